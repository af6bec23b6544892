package agent

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/palyra-mesh/palyra/ca"
)

// The data dir's files. Secrets are 0600 in a 0700 dir.
const (
	fileKey   = "node.key"    // libp2p private key (protobuf), secret
	fileCert  = "node.crt"    // this node's certificate (PEM)
	fileCA    = "ca.crt"      // mesh CA certificate (PEM)
	fileCAKey = "ca.key"      // CA key, only on the founder (PEM), secret
	fileMesh  = "mesh.json"   // meshFile; a mesh exists when this file does
	fileAdmin = "admin.token" // local admin credential, secret
	dirRaft   = "raft"        // badger store and raft snapshots (voters)
)

// ErrNoMesh is returned when the data dir holds no mesh and neither --init
// nor --pin was given.
var ErrNoMesh = errors.New("no mesh in the data dir: start with --init to create a mesh, or --pin PIN to join one (create a PIN with `palyra pair` on any member)")

// meshFile is the node's non-secret local record of its mesh.
type meshFile struct {
	MeshID string `json:"mesh_id"`
	Name   string `json:"name"`
	// Voter: this node runs raft.
	Voter bool `json:"voter"`
	// Bootstrap: this node created the mesh and has not yet bootstrapped
	// its one-voter raft cluster. Only then may it bootstrap: a founder
	// removed from the voters and promoted again must join the leader's
	// cluster, not found a second one.
	Bootstrap bool `json:"bootstrap,omitempty"`
	// Peers are members' multiaddrs (with /p2p/) to rejoin after a restart.
	Peers []string `json:"peers"`
}

// identity is a node's loaded identity.
type identity struct {
	key  crypto.PrivKey
	mesh meshFile
	ca   *ca.CA
	cert *ca.Certificate
}

func hasMesh(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, fileMesh))
	return err == nil
}

func loadIdentity(dir string) (*identity, error) {
	read := func(name string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("data dir: %w", err)
		}
		return b, nil
	}
	var id identity
	b, err := read(fileMesh)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &id.mesh); err != nil {
		return nil, fmt.Errorf("data dir: %s: %w", fileMesh, err)
	}
	if b, err = read(fileKey); err != nil {
		return nil, err
	}
	if id.key, err = crypto.UnmarshalPrivateKey(b); err != nil {
		return nil, fmt.Errorf("data dir: %s: %w", fileKey, err)
	}
	caPEM, err := read(fileCA)
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, fileCAKey))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if id.ca, err = ca.Load(caPEM, keyPEM); err != nil {
		return nil, fmt.Errorf("data dir: %s: %w", fileCA, err)
	}
	if b, err = read(fileCert); err != nil {
		return nil, err
	}
	if id.cert, err = ca.ParseCertificatePEM(b); err != nil {
		return nil, fmt.Errorf("data dir: %s: %w", fileCert, err)
	}
	return &id, nil
}

// save writes the identity, mesh.json last: a crash midway leaves no mesh
// (the sentry file is missing) rather than half of one.
func (id *identity) save(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	keyBytes, err := crypto.MarshalPrivateKey(id.key)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, fileKey), keyBytes, 0o600); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, fileCA), id.ca.CertPEM(), 0o644); err != nil {
		return err
	}
	if id.ca.Key != nil {
		kp, err := id.ca.KeyPEM()
		if err != nil {
			return err
		}
		if err := writeFileAtomic(filepath.Join(dir, fileCAKey), kp, 0o600); err != nil {
			return err
		}
	}
	if err := writeFileAtomic(filepath.Join(dir, fileCert), id.cert.PEM(), 0o644); err != nil {
		return err
	}
	return id.saveMesh(dir)
}

func (id *identity) saveMesh(dir string) error {
	b, err := json.MarshalIndent(id.mesh, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, fileMesh), b, 0o644)
}

// writeFileAtomic writes via a synced temp file and a rename, then syncs
// the directory, so a crash leaves either the old or the new file.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// adminToken returns the local admin credential, creating it on first use.
// Start has already made an existing one 0600 (prepareDataDir).
func adminToken(dir string) (string, error) {
	path := filepath.Join(dir, fileAdmin)
	if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
		return string(b), nil
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	tok := "palyra_local_" + base64.RawURLEncoding.EncodeToString(raw)
	if err := writeFileAtomic(path, []byte(tok), 0o600); err != nil {
		return "", fmt.Errorf("write admin credential: %w", err)
	}
	return tok, nil
}

// ReadAdminToken reads the local admin credential of the agent using dir;
// the client commands use it when no --token is given.
func ReadAdminToken(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, fileAdmin))
	if err != nil {
		return "", fmt.Errorf("no local credential in %s (is an agent running with this --data-dir?): %w", dir, err)
	}
	return string(b), nil
}

// parsePeer parses a member address ending in /p2p/PEER_ID.
func parsePeer(s string) (peer.AddrInfo, error) {
	a, err := ma.NewMultiaddr(s)
	if err != nil {
		return peer.AddrInfo{}, err
	}
	ai, err := peer.AddrInfoFromP2pAddr(a)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("must end in /p2p/PEER_ID: %w", err)
	}
	return *ai, nil
}
