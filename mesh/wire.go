package mesh

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// MaxMessage bounds one JSON message on palyra's own stream protocols
// (authentication, pairing, control forwarding). Anything larger is refused
// before it is read, so a peer cannot make us allocate without limit.
const MaxMessage = 1 << 20

// ErrMessageTooLarge is returned when a message exceeds its size limit.
var ErrMessageTooLarge = errors.New("message too large")

// WriteMsg writes v as one length-prefixed JSON message: a 4-byte big-endian
// length followed by the JSON document.
func WriteMsg(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode message: %w", err)
	}
	if len(b) > MaxMessage {
		return fmt.Errorf("%w: %d bytes", ErrMessageTooLarge, len(b))
	}
	buf := make([]byte, 4+len(b))
	binary.BigEndian.PutUint32(buf, uint32(len(b)))
	copy(buf[4:], b)
	_, err = w.Write(buf)
	return err
}

// ReadMsg reads one message written by WriteMsg into v, refusing messages
// longer than max bytes (MaxMessage when max <= 0).
func ReadMsg(r io.Reader, max int, v any) error {
	if max <= 0 || max > MaxMessage {
		max = MaxMessage
	}
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > uint32(max) {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrMessageTooLarge, n, max)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // the header promised a body
		}
		return fmt.Errorf("read message body: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode message: %w", err)
	}
	return nil
}
