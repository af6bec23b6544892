package mesh

import "errors"

var (
	// ErrNotAuthenticated is returned when a peer has not shown a valid,
	// unrevoked certificate of this mesh.
	ErrNotAuthenticated = errors.New("peer not authenticated")
	// ErrRevoked is returned for a peer whose identity is revoked.
	ErrRevoked = errors.New("peer revoked")
	// ErrNoCoordinator is returned when no coordinator is known or reachable.
	ErrNoCoordinator = errors.New("no coordinator reachable")
)
