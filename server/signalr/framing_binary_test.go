package signalr

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// mustHex turns "02 91 06" into bytes; spaces are for reading only.
func mustHex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		tb.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func TestAppendVarint(t *testing.T) {
	tests := []struct {
		n    int
		want string
	}{
		{0, "00"},
		{3, "03"},
		{127, "7f"},
		{128, "80 01"},
		{300, "ac 02"},
		{16383, "ff 7f"},
		{16384, "80 80 01"},
		{1<<21 - 1, "ff ff 7f"},
		{1 << 21, "80 80 80 01"},
		{1<<28 - 1, "ff ff ff 7f"},
		{1 << 28, "80 80 80 80 01"},
		{maxBinaryMessage, "ff ff ff ff 07"},
	}
	for _, tt := range tests {
		want := mustHex(t, tt.want)
		if got := appendVarint([]byte{0xee}, tt.n); !bytes.Equal(got, append([]byte{0xee}, want...)) {
			t.Errorf("appendVarint(%d) = % x, want ee % x", tt.n, got, want)
		}
		if got := varintLen(tt.n); got != len(want) {
			t.Errorf("varintLen(%d) = %d, want %d", tt.n, got, len(want))
		}
		b := make([]byte, len(want))
		putVarint(b, tt.n)
		if !bytes.Equal(b, want) {
			t.Errorf("putVarint(%d) = % x, want % x", tt.n, b, want)
		}
		// The prefix alone declares the length; with maxSize one below it the
		// reader refuses at once, and without a limit it waits for the bytes.
		if tt.n > 0 {
			if _, n, err := nextBinaryRecord(want, 0); n != 0 || err != nil {
				t.Errorf("nextBinaryRecord(prefix of %d, no limit) = %d, %v; want to wait", tt.n, n, err)
			}
			if _, _, err := nextBinaryRecord(want, tt.n-1); !errors.Is(err, ErrMessageTooLarge) {
				t.Errorf("nextBinaryRecord(prefix of %d, max %d) error = %v, want ErrMessageTooLarge", tt.n, tt.n-1, err)
			}
		}
	}
}

func TestNextBinaryRecord(t *testing.T) {
	tests := []struct {
		name    string
		buf     string
		maxSize int
		record  string // hex of the record, when n > 0
		n       int
		err     error
	}{
		{name: "empty buffer", buf: "", n: 0},
		{name: "ping", buf: "02 91 06", record: "91 06", n: 3},
		{name: "ping at exactly maxSize", buf: "02 91 06", maxSize: 2, record: "91 06", n: 3},
		{name: "ping over maxSize", buf: "02 91 06", maxSize: 1, err: ErrMessageTooLarge},
		{name: "first of two", buf: "02 91 06 03 92 08 24", record: "91 06", n: 3},
		{name: "zero length", buf: "00", record: "", n: 1},
		{name: "non-minimal prefix is accepted", buf: "82 00 91 06", record: "91 06", n: 4},
		{name: "prefix only", buf: "02", n: 0},
		{name: "body incomplete", buf: "03 92 08", n: 0},
		{name: "prefix incomplete", buf: "80", n: 0},
		{name: "prefix of 4 bytes incomplete", buf: "80 80 80 80", n: 0},
		{name: "128 declared, 1 present", buf: "80 01 91", n: 0},
		{name: "declared length over maxSize without the bytes", buf: "80 01", maxSize: 127, err: ErrMessageTooLarge},
		{name: "16384 over maxSize", buf: "80 80 01", maxSize: 16383, err: ErrMessageTooLarge},
		{name: "2^31-1 without limit waits", buf: "ff ff ff ff 07", n: 0},
		{name: "2^31-1 over 32 KiB", buf: "ff ff ff ff 07", maxSize: 32 << 10, err: ErrMessageTooLarge},
		{name: "2^31 overflows", buf: "80 80 80 80 08", err: ErrInvalidMessage},
		{name: "5th byte 0x7f overflows", buf: "ff ff ff ff 7f", err: ErrInvalidMessage},
		{name: "6-byte prefix", buf: "80 80 80 80 80 01", err: ErrInvalidMessage},
		{name: "6-byte prefix, cut after 5", buf: "80 80 80 80 80", err: ErrInvalidMessage},
		{name: "overflow is reported before maxSize", buf: "ff ff ff ff ff ff", maxSize: 10, err: ErrInvalidMessage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			record, n, err := nextBinaryRecord(mustHex(t, tt.buf), tt.maxSize)
			if tt.err != nil {
				if !errors.Is(err, tt.err) || n != 0 {
					t.Fatalf("got n=%d err=%v, want n=0 err=%v", n, err, tt.err)
				}
				return
			}
			if err != nil || n != tt.n {
				t.Fatalf("got n=%d err=%v, want n=%d", n, err, tt.n)
			}
			if n > 0 && !bytes.Equal(record, mustHex(t, tt.record)) {
				t.Fatalf("record = % x, want %s", record, tt.record)
			}
		})
	}
}

// TestNextBinaryRecordSplit feeds every prefix of a stream of frames: a
// frame is reported only once it is whole, and the frames come out in order.
func TestNextBinaryRecordSplit(t *testing.T) {
	big := bytes.Repeat([]byte{0xa1}, 300) // a 2-byte prefix
	var stream []byte
	stream = append(stream, mustHex(t, "02 91 06")...)
	stream = appendVarint(stream, len(big))
	stream = append(stream, big...)
	stream = append(stream, mustHex(t, "04 93 07 c0 c2")...)
	wantLens := []int{2, 300, 4}

	for cut := 0; cut <= len(stream); cut++ {
		buf := stream[:cut]
		var got []int
		for {
			record, n, err := nextBinaryRecord(buf, 1024)
			if err != nil {
				t.Fatalf("cut %d: %v", cut, err)
			}
			if n == 0 {
				break
			}
			got = append(got, len(record))
			buf = buf[n:]
		}
		// Exactly the frames that end at or before the cut are complete.
		want := 0
		for i, end := 0, 0; i < len(wantLens); i++ {
			end += varintLen(wantLens[i]) + wantLens[i]
			if end <= cut {
				want++
			}
		}
		if len(got) != want {
			t.Fatalf("cut %d: got %d frames %v, want %d", cut, len(got), got, want)
		}
		for i := range got {
			if got[i] != wantLens[i] {
				t.Fatalf("cut %d: frame %d has %d bytes, want %d", cut, i, got[i], wantLens[i])
			}
		}
	}
}

// FuzzBinaryFraming checks the framing on arbitrary bytes: no panic, n and
// the record are consistent, maxSize is respected, and re-framing a record
// reads back the same record.
func FuzzBinaryFraming(f *testing.F) {
	for _, s := range []string{
		"", "02 91 06", "02 91 06 03 92 08 24", "00", "80", "80 01", "80 80 01", "ac 02",
		"ff ff ff ff 07", "80 80 80 80 08", "80 80 80 80 80 01", "ff ff ff ff ff ff",
		"0c 95 01 80 a1 30 a3 41 64 64 92 01 02", "07 95 03 80 a1 30 03 03", "04 93 07 c0 c2",
	} {
		for _, max := range []int{0, 1, 2, 127, 32 << 10} {
			f.Add(mustHex(f, s), max)
		}
	}
	f.Fuzz(func(t *testing.T, buf []byte, maxSize int) {
		record, n, err := nextBinaryRecord(buf, maxSize)
		if err != nil {
			if n != 0 || record != nil {
				t.Fatalf("error %v with n=%d", err, n)
			}
			if !errors.Is(err, ErrInvalidMessage) && !errors.Is(err, ErrMessageTooLarge) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if n == 0 {
			if record != nil {
				t.Fatal("record without n")
			}
			return
		}
		if n > len(buf) || n < 1+len(record) {
			t.Fatalf("n=%d for a %d-byte record in %d bytes", n, len(record), len(buf))
		}
		if maxSize > 0 && len(record) > maxSize {
			t.Fatalf("record of %d bytes over maxSize %d", len(record), maxSize)
		}
		if !bytes.Equal(buf[n-len(record):n], record) {
			t.Fatal("record is not the tail of the frame")
		}
		// Re-framed with a minimal prefix, the record reads back unchanged;
		// any shorter buffer is incomplete.
		framed := append(appendVarint(nil, len(record)), record...)
		again, m, err := nextBinaryRecord(framed, maxSize)
		if err != nil || m != len(framed) || !bytes.Equal(again, record) {
			t.Fatalf("re-framed record read back as % x (n=%d, err=%v)", again, m, err)
		}
		if _, m, err := nextBinaryRecord(framed[:len(framed)-1], maxSize); m != 0 || err != nil {
			t.Fatalf("a frame missing its last byte read as n=%d err=%v", m, err)
		}
	})
}

// appendVarint appends the length prefix for n the way AppendMessage writes
// it (putVarint), for building test input.
func appendVarint(dst []byte, n int) []byte {
	k := varintLen(n)
	dst = append(dst, make([]byte, k)...)
	putVarint(dst[len(dst)-k:], n)
	return dst
}
