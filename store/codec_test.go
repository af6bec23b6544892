package store

import (
	"bytes"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestLogCodecRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		log  raft.Log
	}{
		{name: "zero", log: raft.Log{}},
		{name: "command", log: raft.Log{Index: 1, Term: 1, Type: raft.LogCommand, Data: []byte("x")}},
		{name: "extensions only", log: raft.Log{Index: 2, Extensions: []byte{0, 1, 2}}},
		{name: "max", log: raft.Log{Index: math.MaxUint64, Term: math.MaxUint64, Type: 255}},
		{name: "now", log: raft.Log{Index: 3, AppendedAt: time.Now()}},
		{name: "unix epoch", log: raft.Log{Index: 4, AppendedAt: time.Unix(0, 0)}},
		{name: "before epoch", log: raft.Log{Index: 5, AppendedAt: time.Unix(-1, 1)}},
		{name: "year 1 plus 1ns", log: raft.Log{Index: 6, AppendedAt: time.Time{}.Add(1)}},
		{name: "big data", log: raft.Log{Index: 7, Data: bytes.Repeat([]byte("d"), 1<<16)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			buf := encodeLog(nil, &tt.log)
			got := raft.Log{Data: []byte("stale"), Extensions: []byte("stale")}
			if err := decodeLog(buf, &got); err != nil {
				t.Fatalf("decode: %v", err)
			}
			checkLogEqual(t, &got, &tt.log)
			if tt.log.AppendedAt.IsZero() && got.AppendedAt != (time.Time{}) {
				t.Fatalf("zero AppendedAt decoded as %v", got.AppendedAt)
			}
		})
	}
}

func TestDecodeLogErrors(t *testing.T) {
	valid := encodeLog(nil, &raft.Log{
		Index: 300, Term: 2, Type: raft.LogCommand,
		Data: []byte("data"), Extensions: []byte("ext"), AppendedAt: time.Unix(1_700_000_000, 5),
	})
	tests := []struct {
		name string
		buf  []byte
	}{
		{name: "nil", buf: nil},
		{name: "unknown version", buf: append([]byte{2}, valid[1:]...)},
		{name: "trailing byte", buf: append(append([]byte{}, valid...), 0)},
		{name: "overlong uvarint", buf: append([]byte{1}, bytes.Repeat([]byte{0xff}, 11)...)},
		{name: "data length past end", buf: []byte{1, 1, 1, 0, 0x7f, 'x'}},
		{name: "huge data length", buf: append([]byte{1, 1, 1, 0}, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)},
		{name: "nanoseconds out of range", buf: append([]byte{1, 1, 1, 0, 0, 0, 0}, 0x80, 0x94, 0xeb, 0xdc, 0x03)}, // 1e9
	}
	// Every strict prefix of a valid encoding is truncated.
	for n := range len(valid) {
		tests = append(tests, struct {
			name string
			buf  []byte
		}{name: "truncated", buf: valid[:n]})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var l raft.Log
			if err := decodeLog(tt.buf, &l); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodeLog(%x) = %v, want ErrCorrupt", tt.buf, err)
			}
		})
	}
}

// FuzzDecodeLog checks that decodeLog never panics and that whatever it
// accepts survives a re-encode unchanged.
func FuzzDecodeLog(f *testing.F) {
	for _, l := range makeLogs(1, 12, 5) {
		f.Add(encodeLog(nil, l))
	}
	f.Add(encodeLog(nil, &raft.Log{}))
	f.Add(encodeLog(nil, &raft.Log{Index: math.MaxUint64, AppendedAt: time.Unix(math.MaxInt64, 999_999_999)}))
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, buf []byte) {
		var l raft.Log
		if err := decodeLog(buf, &l); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		var again raft.Log
		if err := decodeLog(encodeLog(nil, &l), &again); err != nil {
			t.Fatalf("re-encoded entry does not decode: %v", err)
		}
		checkLogEqual(t, &again, &l)
	})
}
