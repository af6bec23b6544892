package mesh

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	tests := []struct {
		name     string
		payloads [][]byte
	}{
		{"empty", [][]byte{{}}},
		{"one byte", [][]byte{{1}}},
		{"two-byte header", [][]byte{bytes.Repeat([]byte{2}, 200)}},
		{"max", [][]byte{bytes.Repeat([]byte{3}, MaxFrameSize)}},
		{"several", [][]byte{[]byte("a"), {}, bytes.Repeat([]byte{4}, 1400), []byte("z")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stream []byte
			for _, p := range tc.payloads {
				var err error
				if stream, err = appendFrame(stream, p); err != nil {
					t.Fatalf("appendFrame: %v", err)
				}
			}
			r := bufio.NewReader(bytes.NewReader(stream))
			for i, want := range tc.payloads {
				got, err := readFrame(r, MaxFrameSize)
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("frame %d: got %d bytes, %v; want %d bytes", i, len(got), err, len(want))
				}
			}
			if _, err := readFrame(r, MaxFrameSize); err != io.EOF {
				t.Fatalf("after last frame: %v, want io.EOF", err)
			}
		})
	}
}

func TestFrameErrors(t *testing.T) {
	if _, err := appendFrame(nil, make([]byte, MaxFrameSize+1)); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("appendFrame(oversized) = %v, want ErrFrameTooLarge", err)
	}
	tests := []struct {
		name  string
		input []byte
		want  error
	}{
		{"declared too large", []byte{0x81, 0x80, 0x04}, ErrFrameTooLarge}, // 65537
		{"endless header", bytes.Repeat([]byte{0xff}, 20), ErrFrameTooLarge},
		{"truncated header", []byte{0x80}, io.ErrUnexpectedEOF},
		{"truncated payload", []byte{5, 'a', 'b'}, io.ErrUnexpectedEOF},
		{"nothing", nil, io.EOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readFrame(bufio.NewReader(bytes.NewReader(tc.input)), MaxFrameSize)
			if !errors.Is(err, tc.want) {
				t.Fatalf("readFrame = %v, want %v", err, tc.want)
			}
		})
	}
}

// FuzzReadFrame feeds arbitrary bytes to the frame decoder: it must never
// panic, never return more than the limit, and whatever it decodes must
// re-encode to the bytes it consumed.
func FuzzReadFrame(f *testing.F) {
	for _, seed := range [][]byte{
		nil, {0}, {1, 'x'}, {0x80}, {0xff, 0xff, 0xff, 0xff, 0x0f},
		{0x80, 0x80, 0x04}, {0x81, 0x80, 0x04}, append([]byte{3}, "abcdef"...),
	} {
		f.Add(seed, uint16(1024))
	}
	f.Fuzz(func(t *testing.T, data []byte, limit uint16) {
		br := bytes.NewReader(data)
		r := bufio.NewReader(br)
		consumed := 0
		for {
			payload, err := readFrame(r, int(limit))
			if err != nil {
				return
			}
			if len(payload) > int(limit) {
				t.Fatalf("payload of %d bytes exceeds limit %d", len(payload), limit)
			}
			enc, err := appendFrame(nil, payload)
			if err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			// A minimal uvarint re-encodes to the consumed bytes; a
			// non-minimal one (accepted, as binary.ReadUvarint does) only
			// has to decode to the same payload.
			end := consumed + len(enc)
			if end <= len(data) && bytes.Equal(data[consumed:end], enc) {
				consumed = end
				continue
			}
			got, err := readFrame(bufio.NewReader(bytes.NewReader(enc)), int(limit))
			if err != nil || !bytes.Equal(got, payload) {
				t.Fatalf("re-encoded frame decodes to %d bytes, %v", len(got), err)
			}
			consumed = len(data) - br.Len() - r.Buffered()
		}
	})
}
