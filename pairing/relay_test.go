package pairing

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"

	"github.com/libp2p/go-libp2p/core/network"
)

// readStream is a network.Stream that can only be read: ReadRelayHeader
// needs nothing else (any other method panics on the nil embedded Stream).
type readStream struct {
	network.Stream
	r io.Reader
}

func (s readStream) Read(p []byte) (int, error) { return s.r.Read(p) }

// frame returns body as one framed message.
func frame(body []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

func TestReadRelayHeader(t *testing.T) {
	j := newJoiner(t)
	tests := []struct {
		name   string
		stream []byte
		ok     bool
	}{
		{"valid", frame(mustJSON(t, RelayHeader{V: Version, Joiner: j.id.String()})), true},
		{"valid, then the joiner's hello", append(frame(mustJSON(t, RelayHeader{V: Version, Joiner: j.id.String()})), frame([]byte("{}"))...), true},
		{"version 0", frame(mustJSON(t, RelayHeader{Joiner: j.id.String()})), false},
		{"version 2", frame(mustJSON(t, RelayHeader{V: 2, Joiner: j.id.String()})), false},
		{"no joiner", frame(mustJSON(t, RelayHeader{V: Version})), false},
		{"joiner not a peer ID", frame(mustJSON(t, RelayHeader{V: Version, Joiner: "12D3KooWnot-a-peer"})), false},
		{"not JSON", frame([]byte("relay")), false},
		{"empty stream", nil, false},
		{"truncated header", []byte{0, 0}, false},
		{"truncated body", frame(mustJSON(t, RelayHeader{V: Version, Joiner: j.id.String()}))[:20], false},
		{"too large", frame(bytes.Repeat([]byte(" "), 4097)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := ReadRelayHeader(readStream{r: bytes.NewReader(tt.stream)})
			if tt.ok {
				if err != nil || id != j.id {
					t.Fatalf("got %s, %v; want %s", id, err, j.id)
				}
				return
			}
			if err == nil || id != "" {
				t.Fatalf("got %q with no error, want a refusal", id)
			}
		})
	}
}
