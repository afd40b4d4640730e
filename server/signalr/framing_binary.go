package signalr

import "fmt"

// The binary framing (MessagePack protocol) puts a VarInt length before each
// message: little-endian groups of 7 bits, the high bit set on every byte but
// the last. The clients stop at 5 bytes and 2^31-1 ("Messages bigger than 2GB
// are not supported."), so a longer or larger prefix can only be garbage.
const (
	maxVarintLen     = 5
	maxBinaryMessage = 1<<31 - 1
)

// nextBinaryRecord returns the first length-prefixed record in buf (without
// its prefix) and the bytes it spans including the prefix. n is 0 when buf
// does not yet hold a whole record. err is ErrMessageTooLarge as soon as the
// prefix declares more than maxSize bytes (maxSize <= 0: no limit), so a
// peer cannot make us buffer a huge message before we refuse it, and
// ErrInvalidMessage when the prefix is longer than 5 bytes or above 2^31-1.
func nextBinaryRecord(buf []byte, maxSize int) (record []byte, n int, err error) {
	var length uint64
	i := 0
	for {
		if i == len(buf) {
			return nil, 0, nil // the prefix itself is incomplete
		}
		b := buf[i]
		// The 5th byte carries bits 28..34; only 3 of them fit below 2^31,
		// and it must not announce a 6th byte.
		if i == maxVarintLen-1 && b > 0x07 {
			return nil, 0, fmt.Errorf("%w: binary length prefix is longer than %d bytes or above 2^31-1", ErrInvalidMessage, maxVarintLen)
		}
		length |= uint64(b&0x7f) << (7 * i)
		i++
		if b&0x80 == 0 {
			break
		}
	}
	if maxSize > 0 && length > uint64(maxSize) {
		return nil, 0, fmt.Errorf("%w: binary message declares %d bytes, the limit is %d", ErrMessageTooLarge, length, maxSize)
	}
	// Compare without adding, so a 2 GiB length cannot overflow int on 32-bit.
	if uint64(len(buf)-i) < length {
		return nil, 0, nil
	}
	end := i + int(length)
	return buf[i:end], end, nil
}

// varintLen is the number of bytes putVarint writes for n.
func varintLen(n int) int {
	k := 1
	for n >= 0x80 {
		n >>= 7
		k++
	}
	return k
}

// putVarint writes the prefix for n into b, which must hold varintLen(n) bytes.
func putVarint(b []byte, n int) {
	i := 0
	for n >= 0x80 {
		b[i] = byte(n) | 0x80
		n >>= 7
		i++
	}
	b[i] = byte(n)
}
