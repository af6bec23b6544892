package store

import "errors"

var (
	// ErrNotFound is returned, bare, by the raft StableStore methods (Get,
	// GetUint64) when a key is absent.
	//
	// Its message is exactly "not found" on purpose: hashicorp/raft recognises
	// a fresh stable store by comparing err.Error() == "not found" (NewRaft,
	// HasExistingState, vote restore), as raft-boltdb's ErrKeyNotFound does.
	// Change the message and raft refuses to start on an empty store.
	ErrNotFound = errors.New("not found")

	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("store closed")

	// ErrCorrupt is returned when a stored record cannot be decoded: a log
	// entry, a uint64 of the stable store, or a key of the wrong shape.
	ErrCorrupt = errors.New("corrupt record")

	// ErrInvalidKey is returned for an empty or oversized key.
	ErrInvalidKey = errors.New("invalid key")

	// ErrValueTooLarge is returned for a value larger than MaxValueSize
	// (MaxInMemoryValueSize for an in-memory store).
	// The store checks this itself so that badger's own error, which
	// hex-dumps the start of the value, never reaches a log.
	ErrValueTooLarge = errors.New("value too large")
)
