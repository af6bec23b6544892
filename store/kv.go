package store

import (
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// KV is the store's namespace for the agent's local settings, under its own
// key prefix so that it never collides with raft data. It is a separate
// type because Store's Get is raft.StableStore's Get(key []byte).
//
// A KV is safe for concurrent use and valid as long as its Store; after the
// Store is closed its methods return ErrClosed.
type KV struct {
	s *Store
}

// KV returns the settings namespace of the store.
func (s *Store) KV() *KV { return &KV{s: s} }

// Get returns a copy of the value under key (empty, not nil, for an empty
// value), or an error wrapping ErrNotFound when there is none.
func (kv *KV) Get(key string) ([]byte, error) {
	if err := checkKey([]byte(key)); err != nil {
		return nil, fmt.Errorf("kv get %q: %w", key, err)
	}
	if err := kv.s.acquire(); err != nil {
		return nil, err
	}
	defer kv.s.release()
	val, err := kv.s.getValue(prefixed(prefixKV, []byte(key)))
	if err != nil {
		return nil, fmt.Errorf("kv get %q: %w", key, err)
	}
	return val, nil
}

// Put durably stores value under key, replacing any previous value; it
// returns after the write is synced, and value may be reused then.
func (kv *KV) Put(key string, value []byte) error {
	if err := kv.s.checkKeyValue([]byte(key), value); err != nil {
		return fmt.Errorf("kv put %q: %w", key, err)
	}
	if err := kv.s.acquire(); err != nil {
		return err
	}
	defer kv.s.release()
	err := kv.s.batchWrite(1, func(txn *badger.Txn, _ int) error {
		return txn.Set(prefixed(prefixKV, []byte(key)), value)
	})
	if err != nil {
		return fmt.Errorf("kv put %q: %w", key, err)
	}
	return nil
}

// Delete durably removes key. Deleting a missing key is not an error.
func (kv *KV) Delete(key string) error {
	if err := checkKey([]byte(key)); err != nil {
		return fmt.Errorf("kv delete %q: %w", key, err)
	}
	if err := kv.s.acquire(); err != nil {
		return err
	}
	defer kv.s.release()
	err := kv.s.batchWrite(1, func(txn *badger.Txn, _ int) error {
		return txn.Delete(prefixed(prefixKV, []byte(key)))
	})
	if err != nil {
		return fmt.Errorf("kv delete %q: %w", key, err)
	}
	return nil
}
