package pairing

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/palyra-mesh/palyra/ca"
	"github.com/palyra-mesh/palyra/mesh"
)

// ErrNoMember is returned when no member could be reached.
var ErrNoMember = errors.New("no mesh member reachable")

// JoinConfig configures a join.
type JoinConfig struct {
	Host host.Host
	// Key is the joiner's libp2p key; its certificate will carry it.
	Key  ed25519.PrivateKey
	Name string
	PIN  string
	// Members to try, in order. More may arrive on Found (mDNS).
	Members []peer.AddrInfo
	Found   <-chan peer.AddrInfo
	// Wait bounds the search for a member that can pair us (default 30s).
	Wait time.Duration
	// CAFingerprint, when set (from a join code), must match the mesh CA.
	CAFingerprint string
	// OnPending is called when the join waits for an operator's approval.
	OnPending func()
	Logger    *slog.Logger
}

// Join pairs with a mesh and returns the verified bundle. A *Error means
// the mesh refused (final); ErrNoMember means nobody answered within
// cfg.Wait. Members that cannot reach a coordinator right now (an election
// is under way) are tried again until then.
func Join(ctx context.Context, cfg JoinConfig) (*Bundle, error) {
	if err := ca.ValidPIN(cfg.PIN); err != nil {
		return nil, &Error{Code: CodeBadRequest, Message: err.Error()}
	}
	wait := cfg.Wait
	if wait <= 0 {
		wait = 30 * time.Second
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	known := append([]peer.AddrInfo{}, cfg.Members...)
	var lastErr error
	backoff := 200 * time.Millisecond
	for {
		for _, ai := range known {
			b, err := joinVia(ctx, cfg, ai)
			if err == nil {
				return b, nil
			}
			var pe *Error
			if errors.As(err, &pe) && pe.Code != CodeUnavailable {
				return nil, err
			}
			cfg.Logger.Debug("member could not pair us", "peer", ai.ID, "err", err)
			lastErr = err
		}
		retry := time.NewTimer(backoff)
		select {
		case ai := <-cfg.Found:
			retry.Stop()
			if ai.ID != cfg.Host.ID() && !slices.ContainsFunc(known, func(k peer.AddrInfo) bool { return k.ID == ai.ID }) {
				known = append(known, ai)
			}
		case <-retry.C:
			backoff = min(backoff*2, 2*time.Second)
		case <-deadline.C:
			retry.Stop()
			return nil, noMember(lastErr)
		case <-ctx.Done():
			retry.Stop()
			return nil, ctx.Err()
		}
	}
}

func noMember(last error) error {
	if last != nil {
		return fmt.Errorf("%w (last error: %w)", ErrNoMember, last)
	}
	return ErrNoMember
}

// joinVia runs the exchange through one member.
func joinVia(ctx context.Context, cfg JoinConfig, ai peer.AddrInfo) (*Bundle, error) {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := cfg.Host.Connect(dctx, ai); err != nil {
		return nil, fmt.Errorf("connect %s: %w", ai.ID, err)
	}
	s, err := cfg.Host.NewStream(dctx, ai.ID, Protocol)
	if err != nil {
		return nil, fmt.Errorf("open pairing stream to %s: %w", ai.ID, err)
	}
	defer s.Close()
	return exchange(ctx, cfg, s)
}

// conn is the joiner's end of the exchange: a libp2p stream, or a net.Conn
// in tests.
type conn interface {
	io.ReadWriter
	SetDeadline(time.Time) error
	Close() error
}

// exchange runs the joiner's side of the protocol on s.
func exchange(ctx context.Context, cfg JoinConfig, s conn) (*Bundle, error) {
	step := func(d time.Duration) { _ = s.SetDeadline(time.Now().Add(d)) }
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()

	sid := make([]byte, 16)
	if _, err := rand.Read(sid); err != nil {
		return nil, err
	}
	ini, ya, err := ca.NewInitiator([]byte(cfg.PIN), cpaceCI, sid, nil)
	if err != nil {
		return nil, err
	}
	step(15 * time.Second)
	if err := mesh.WriteMsg(s, Hello{V: Version, Slot: cfg.PIN[:1], SID: sid, Share: ya}); err != nil {
		return nil, fmt.Errorf("send hello: %w", err)
	}
	var ch Challenge
	if err := mesh.ReadMsg(s, maxMsg, &ch); err != nil {
		return nil, fmt.Errorf("read challenge: %w", err)
	}
	if ch.Error != nil {
		return nil, ch.Error
	}
	isk, err := ini.Finish(ch.Share)
	if err != nil {
		return nil, fmt.Errorf("member sent an invalid key share: %w", err)
	}
	csr, err := ca.NewCSR(cfg.Key, cfg.Name, nil)
	if err != nil {
		return nil, err
	}
	tag := ca.Tag(isk, "palyra-pair-confirm", sid, ya, ch.Share, csr)
	if err := mesh.WriteMsg(s, Confirm{CSR: csr, Tag: tag}); err != nil {
		return nil, fmt.Errorf("send confirm: %w", err)
	}
	var res Result
	step(15 * time.Second)
	if err := mesh.ReadMsg(s, maxMsg, &res); err != nil {
		return nil, fmt.Errorf("read result: %w", err)
	}
	if res.Pending {
		if cfg.OnPending != nil {
			cfg.OnPending()
		}
		step(11 * time.Minute)
		if err := mesh.ReadMsg(s, maxMsg, &res); err != nil {
			return nil, fmt.Errorf("read result: %w", err)
		}
	}
	if res.Error != nil {
		return nil, res.Error
	}
	// Only the holder of the exchanged key (the coordinator, who knows the
	// PIN) can produce this tag: a fake member cannot hand us a fake CA.
	if !ca.CheckTag(isk, res.Tag, "palyra-pair-bundle", sid, ya, ch.Share, res.Bundle) {
		return nil, fmt.Errorf("bundle not authenticated by the PIN exchange: refusing it")
	}
	b, err := decodeBundle(res.Bundle)
	if err != nil {
		return nil, err
	}
	if err := verifyBundle(b, cfg); err != nil {
		return nil, err
	}
	return b, nil
}

// verifyBundle checks the bundle is a coherent mesh identity for our key.
func verifyBundle(b *Bundle, cfg JoinConfig) error {
	authority, err := ca.Load([]byte(b.CACertPEM), nil)
	if err != nil {
		return fmt.Errorf("bundle CA: %w", err)
	}
	if cfg.CAFingerprint != "" && !strings.EqualFold(cfg.CAFingerprint, authority.Fingerprint()) {
		return fmt.Errorf("mesh CA fingerprint %s does not match the join code's", authority.Fingerprint())
	}
	cert, err := ca.ParseCertificatePEM([]byte(b.CertPEM))
	if err != nil {
		return fmt.Errorf("bundle certificate: %w", err)
	}
	if err := authority.Verify(time.Now(), cert, cfg.Key.Public().(ed25519.PublicKey)); err != nil {
		return fmt.Errorf("bundle certificate: %w", err)
	}
	if authority.MeshID != b.MeshID {
		return fmt.Errorf("bundle mesh ID %q does not match its CA", b.MeshID)
	}
	return nil
}
