package pairing

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/palyra-mesh/palyra/mesh"
)

// Relay pipes a joiner's stream to the coordinator over RelayProtocol. It
// sees only CPace shares, a CSR and a tagged bundle: nothing it could use to
// guess the PIN offline or to alter what the two ends agree on.
func Relay(ctx context.Context, joiner network.Stream, coordinator peer.ID, gate *mesh.Gate) error {
	h := gate.Host()
	if err := gate.Await(ctx, coordinator); err != nil {
		return fmt.Errorf("authenticate coordinator: %w", err)
	}
	up, err := h.NewStream(ctx, coordinator, RelayProtocol)
	if err != nil {
		return fmt.Errorf("open relay stream: %w", err)
	}
	if err := mesh.WriteMsg(up, RelayHeader{V: Version, Joiner: joiner.Conn().RemotePeer().String()}); err != nil {
		up.Reset()
		return fmt.Errorf("send relay header: %w", err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	pipe := func(dst, src network.Stream) {
		defer wg.Done()
		_, err := io.Copy(dst, src)
		if err != nil {
			dst.Reset()
			src.Reset()
			return
		}
		_ = dst.CloseWrite()
	}
	go pipe(up, joiner)
	go pipe(joiner, up)
	wg.Wait()
	return nil
}

// ReadRelayHeader reads the header a relaying member sends first.
func ReadRelayHeader(s network.Stream) (peer.ID, error) {
	var h RelayHeader
	if err := mesh.ReadMsg(s, 4096, &h); err != nil {
		return "", fmt.Errorf("read relay header: %w", err)
	}
	if h.V != Version {
		return "", fmt.Errorf("relay header version %d not supported", h.V)
	}
	return peer.Decode(h.Joiner)
}
