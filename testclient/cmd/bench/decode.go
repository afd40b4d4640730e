package main

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"time"
)

// The load tool reads two fields of every notification it receives: "r", the
// sequence number it put there, and "ca", the time it published it. Decoding
// the whole notification for that would cost more CPU than the hub spends on
// delivering it, so these functions find the two fields in the encoded bytes.
// They rely on the shape of the notifications the tool itself publishes
// (no sender, "r" a decimal string, "ca" a UTC time, "r" before "ca" as the
// hub writes them); anything else falls back to a full decode.

var (
	jsonRefKey = []byte(`"r":"`)
	jsonCAKey  = []byte(`"ca":"`)
	mpRefKey   = []byte{0xa1, 'r'}
	mpCAKey    = []byte{0xa2, 'c', 'a'}
)

// scanJSON finds "r" and "ca" in a JSON notification.
func scanJSON(b []byte) (seq int64, sent int64, ok bool) {
	i := bytes.Index(b, jsonRefKey)
	if i < 0 {
		return 0, 0, false
	}
	b = b[i+len(jsonRefKey):]
	seq, n := parseDigits(b)
	if n == 0 || n >= len(b) || b[n] != '"' {
		return 0, 0, false
	}
	b = b[n+1:]
	i = bytes.Index(b, jsonCAKey)
	if i < 0 {
		return 0, 0, false
	}
	b = b[i+len(jsonCAKey):]
	end := bytes.IndexByte(b, '"')
	if end < 0 {
		return 0, 0, false
	}
	sent, ok = parseRFC3339UTC(b[:end])
	if !ok {
		t, err := time.Parse(time.RFC3339Nano, string(b[:end]))
		if err != nil {
			return 0, 0, false
		}
		sent, ok = t.UnixNano(), true
	}
	return seq, sent, ok
}

// scanMsgpack finds "r" and "ca" in a MessagePack notification: "r" as a
// string of digits, "ca" as the timestamp extension (type -1) in any of its
// three sizes.
func scanMsgpack(b []byte) (seq int64, sent int64, ok bool) {
	i := bytes.Index(b, mpRefKey)
	if i < 0 {
		return 0, 0, false
	}
	b = b[i+len(mpRefKey):]
	if len(b) == 0 {
		return 0, 0, false
	}
	var slen int
	switch c := b[0]; {
	case c >= 0xa0 && c <= 0xbf:
		slen, b = int(c&0x1f), b[1:]
	case c == 0xd9 && len(b) > 1:
		slen, b = int(b[1]), b[2:]
	default:
		return 0, 0, false
	}
	if slen == 0 || slen > len(b) {
		return 0, 0, false
	}
	seq, n := parseDigits(b[:slen])
	if n != slen {
		return 0, 0, false
	}
	b = b[slen:]
	i = bytes.Index(b, mpCAKey)
	if i < 0 {
		return 0, 0, false
	}
	b = b[i+len(mpCAKey):]
	switch {
	case len(b) >= 6 && b[0] == 0xd6 && b[1] == 0xff: // 32-bit seconds
		return seq, int64(binary.BigEndian.Uint32(b[2:6])) * 1e9, true
	case len(b) >= 10 && b[0] == 0xd7 && b[1] == 0xff: // 30-bit ns, 34-bit seconds
		v := binary.BigEndian.Uint64(b[2:10])
		return seq, int64(v&(1<<34-1))*1e9 + int64(v>>34), true
	case len(b) >= 15 && b[0] == 0xc7 && b[1] == 12 && b[2] == 0xff: // 32-bit ns, 64-bit seconds
		ns := binary.BigEndian.Uint32(b[3:7])
		sec := int64(binary.BigEndian.Uint64(b[7:15]))
		return seq, sec*1e9 + int64(ns), true
	}
	return 0, 0, false
}

// parseDigits reads a non-negative decimal number at the start of b and
// returns it with the count of digits read.
func parseDigits(b []byte) (int64, int) {
	var v int64
	n := 0
	for n < len(b) && n < 18 && b[n] >= '0' && b[n] <= '9' {
		v = v*10 + int64(b[n]-'0')
		n++
	}
	return v, n
}

// parseRFC3339UTC parses "2006-01-02T15:04:05[.fraction]Z" without
// allocating, as Go writes UTC times in JSON.
func parseRFC3339UTC(b []byte) (int64, bool) {
	if len(b) < 20 || b[len(b)-1] != 'Z' || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' {
		return 0, false
	}
	num := func(s []byte) (int, bool) {
		v := 0
		for _, c := range s {
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	year, ok1 := num(b[0:4])
	month, ok2 := num(b[5:7])
	day, ok3 := num(b[8:10])
	hour, ok4 := num(b[11:13])
	minute, ok5 := num(b[14:16])
	sec, ok6 := num(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || month < 1 || month > 12 || day < 1 || day > 31 {
		return 0, false
	}
	var nsec int64
	frac := b[19 : len(b)-1]
	if len(frac) > 0 {
		if frac[0] != '.' || len(frac) < 2 || len(frac) > 10 {
			return 0, false
		}
		f, ok := num(frac[1:])
		if !ok {
			return 0, false
		}
		for i := len(frac) - 1; i < 9; i++ {
			f *= 10
		}
		nsec = int64(f)
	}
	days := daysFromCivil(year, month, day)
	return (days*86400+int64(hour*3600+minute*60+sec))*1e9 + nsec, true
}

// daysFromCivil returns the days since 1970-01-01 of a proleptic Gregorian
// date (Howard Hinnant's algorithm).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

// appendSeq writes a sequence number as the tool's "r" value.
func appendSeq(dst []byte, seq int64) []byte { return strconv.AppendInt(dst, seq, 10) }
