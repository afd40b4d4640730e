package signalr

import "bytes"

// recordSeparator ends every message of the text framing (JSON protocol and the
// handshake). It can never appear inside JSON text, so splitting on it is safe.
const recordSeparator = 0x1e

// nextTextRecord returns the first record in buf (without its separator) and
// the bytes it spans including the separator. n is 0 when buf holds no whole
// record; err is ErrMessageTooLarge when the record is longer than maxSize.
func nextTextRecord(buf []byte, maxSize int) (record []byte, n int, err error) {
	i := bytes.IndexByte(buf, recordSeparator)
	if i < 0 {
		if maxSize > 0 && len(buf) > maxSize {
			return nil, 0, ErrMessageTooLarge
		}
		return nil, 0, nil
	}
	if maxSize > 0 && i > maxSize {
		return nil, 0, ErrMessageTooLarge
	}
	return buf[:i], i + 1, nil
}
