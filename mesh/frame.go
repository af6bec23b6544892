package mesh

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Framing of gossip packets on the long-lived packet stream.
//
// memberlist thinks in datagrams, but the transport sends them down one
// libp2p stream per peer, so each packet travels as a frame:
//
//	uvarint(len(payload)) || payload
//
// A frame is at most MaxFrameSize bytes of payload. memberlist's own packets
// stay under its UDPBufferSize (1400 bytes by default); the limit is there so
// a hostile or broken peer cannot make a reader allocate without bound.

// MaxFrameSize is the largest packet payload, in bytes, that the gossip
// transport carries in one frame.
const MaxFrameSize = 64 << 10

// maxFrameHeader is the longest uvarint a frame of MaxFrameSize needs.
const maxFrameHeader = binary.MaxVarintLen32

// ErrFrameTooLarge reports a frame longer than MaxFrameSize, on either the
// sending or the receiving side.
var ErrFrameTooLarge = errors.New("gossip frame too large")

// appendFrame appends payload framed as uvarint length || payload to dst and
// returns the extended slice. Building the frame in one buffer lets the
// writer hand it to the stream in a single Write, so one packet becomes one
// yamux data frame.
func appendFrame(dst, payload []byte) ([]byte, error) {
	if len(payload) > MaxFrameSize {
		return dst, fmt.Errorf("frame of %d bytes: %w", len(payload), ErrFrameTooLarge)
	}
	dst = binary.AppendUvarint(dst, uint64(len(payload)))
	return append(dst, payload...), nil
}

// frameReader is what readFrame needs: byte-wise access for the uvarint
// header and bulk reads for the payload. *bufio.Reader satisfies it.
type frameReader interface {
	io.Reader
	io.ByteReader
}

// readFrame reads one frame from r and returns its payload in a fresh slice
// that the caller owns. It checks the declared length against limit before
// allocating anything. A clean end of stream before the first header byte
// is io.EOF; a stream that ends inside a frame is io.ErrUnexpectedEOF.
func readFrame(r frameReader, limit int) ([]byte, error) {
	n, err := readFrameLen(r)
	if err != nil {
		return nil, err
	}
	if n > uint64(limit) {
		return nil, fmt.Errorf("frame of %d bytes, limit %d: %w", n, limit, ErrFrameTooLarge)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}

// readFrameLen decodes the uvarint header. It refuses headers longer than
// maxFrameHeader bytes so a stream of continuation bytes is rejected early
// instead of being read up to binary.MaxVarintLen64.
func readFrameLen(r io.ByteReader) (uint64, error) {
	var n uint64
	var shift uint
	for i := 0; i < maxFrameHeader; i++ {
		b, err := r.ReadByte()
		if err != nil {
			if i > 0 && errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		n |= uint64(b&0x7f) << shift
		if b < 0x80 {
			return n, nil
		}
		shift += 7
	}
	return 0, fmt.Errorf("frame header longer than %d bytes: %w", maxFrameHeader, ErrFrameTooLarge)
}
