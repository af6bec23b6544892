package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
)

// A Store is raft's log store and stable store, usually both at once:
// raft.NewRaft(conf, fsm, st, st, snaps, trans).
//
// raft calls these methods from several goroutines (the main loop, the
// replication goroutines, the snapshot goroutine); they are all safe for
// concurrent use.
var (
	_ raft.LogStore    = (*Store)(nil)
	_ raft.StableStore = (*Store)(nil)
)

// logKeyLen is len(prefixLog) + 8 bytes of big-endian index.
const logKeyLen = len(prefixLog) + 8

// deleteChunk is how many log keys DeleteRange collects per read pass
// before deleting them; it bounds DeleteRange's memory for any range.
const deleteChunk = 4096

// logKey returns the key of the log entry at index. Big-endian, so that
// badger's key order is index order.
func logKey(index uint64) []byte {
	k := make([]byte, logKeyLen)
	copy(k, prefixLog)
	binary.BigEndian.PutUint64(k[len(prefixLog):], index)
	return k
}

// logIndex parses a key of the log namespace.
func logIndex(key []byte) (uint64, error) {
	if len(key) != logKeyLen {
		return 0, fmt.Errorf("%w: log key of %d bytes", ErrCorrupt, len(key))
	}
	return binary.BigEndian.Uint64(key[len(prefixLog):]), nil
}

// FirstIndex returns the index of the oldest log entry, or 0 when the log
// is empty.
func (s *Store) FirstIndex() (uint64, error) {
	idx, err := s.edgeIndex(false)
	if err != nil {
		return 0, fmt.Errorf("first index: %w", err)
	}
	return idx, nil
}

// LastIndex returns the index of the newest log entry, or 0 when the log
// is empty.
func (s *Store) LastIndex() (uint64, error) {
	idx, err := s.edgeIndex(true)
	if err != nil {
		return 0, fmt.Errorf("last index: %w", err)
	}
	return idx, nil
}

// edgeIndex takes the shared lock for edgeIndexLocked.
func (s *Store) edgeIndex(reverse bool) (uint64, error) {
	if err := s.acquire(); err != nil {
		return 0, err
	}
	defer s.release()
	return s.edgeIndexLocked(reverse)
}

// edgeIndexLocked returns the first (or, reversed, the last) log index, 0
// when the log is empty: one seek on the log prefix, keys only. The caller
// holds the shared lock.
func (s *Store) edgeIndexLocked(reverse bool) (uint64, error) {
	var idx uint64
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{
			Prefix:  []byte(prefixLog),
			Reverse: reverse,
		})
		defer it.Close()
		if reverse {
			// Rewind on a reversed prefix iterator seeks to the prefix
			// itself, which sorts before every key under it.
			it.Seek(logKey(math.MaxUint64))
		} else {
			it.Rewind()
		}
		if !it.Valid() {
			return nil
		}
		var err error
		idx, err = logIndex(it.Item().Key())
		return err
	})
	return idx, err
}

// GetLog reads the entry at index into log. It returns raft.ErrLogNotFound,
// unwrapped as raft compares it with ==, when there is no such entry.
func (s *Store) GetLog(index uint64, log *raft.Log) error {
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.release()
	val, err := s.getValue(logKey(index))
	if errors.Is(err, ErrNotFound) {
		return raft.ErrLogNotFound
	}
	if err != nil {
		return fmt.Errorf("get log %d: %w", index, err)
	}
	if err := decodeLog(val, log); err != nil {
		return fmt.Errorf("get log %d: %w", index, err)
	}
	if log.Index != index {
		return fmt.Errorf("get log %d: %w: entry says index %d", index, ErrCorrupt, log.Index)
	}
	return nil
}

// StoreLog durably stores one entry, replacing any entry at its index.
func (s *Store) StoreLog(log *raft.Log) error {
	return s.StoreLogs([]*raft.Log{log})
}

// StoreLogs durably stores entries, replacing any at the same indexes. It
// returns after the write is synced. Entries need not be contiguous. A batch
// too large for one badger transaction is committed in several, in order:
// after a crash part-way, a prefix of the batch is stored.
func (s *Store) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	vals := make([][]byte, len(logs))
	for i, l := range logs {
		vals[i] = encodeLog(nil, l)
		if err := s.checkValue(vals[i]); err != nil {
			return fmt.Errorf("store log %d: %w", l.Index, err)
		}
	}
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.release()
	err := s.batchWrite(len(logs), func(txn *badger.Txn, i int) error {
		return txn.Set(logKey(logs[i].Index), vals[i])
	})
	if err != nil {
		return fmt.Errorf("store logs %d..%d: %w", logs[0].Index, logs[len(logs)-1].Index, err)
	}
	return nil
}

// DeleteRange durably deletes the entries with min <= index <= max; indexes
// without an entry are skipped. It works in chunks, so any range fits in
// badger's transaction limits, and orders them so that a crash part-way
// never leaves a hole in the log: a range that reaches the last entry (raft
// truncating a conflicting suffix) is deleted from the top down, any other
// (raft compacting the head after a snapshot) from the bottom up.
func (s *Store) DeleteRange(min, max uint64) error {
	if min > max {
		return nil
	}
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.release()
	last, err := s.edgeIndexLocked(true)
	if err != nil {
		return fmt.Errorf("delete logs %d..%d: %w", min, max, err)
	}
	down := max >= last
	from := min
	if down {
		from = max
	}
	for {
		keys, next, more, err := s.logKeysIn(min, max, from, down, deleteChunk)
		if err != nil {
			return fmt.Errorf("delete logs %d..%d: %w", min, max, err)
		}
		err = s.batchWrite(len(keys), func(txn *badger.Txn, i int) error {
			return txn.Delete(keys[i])
		})
		if err != nil {
			return fmt.Errorf("delete logs %d..%d: %w", min, max, err)
		}
		if s.afterDeleteChunk != nil {
			s.afterDeleteChunk()
		}
		if !more {
			return nil
		}
		from = next
	}
}

// logKeysIn returns up to limit keys of existing entries with
// min <= index <= max, starting at from and going up (or down), in that
// order. When more is true, further entries may follow from index next on.
// The caller holds the shared lock.
func (s *Store) logKeysIn(min, max, from uint64, down bool, limit int) (keys [][]byte, next uint64, more bool, err error) {
	err = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixLog), Reverse: down})
		defer it.Close()
		for it.Seek(logKey(from)); it.Valid(); it.Next() {
			idx, err := logIndex(it.Item().Key())
			if err != nil {
				return err
			}
			if idx > max || idx < min {
				return nil
			}
			if len(keys) == limit {
				next, more = idx, true
				return nil
			}
			keys = append(keys, it.Item().KeyCopy(nil))
		}
		return nil
	})
	return keys, next, more, err
}

// Set durably stores val under key in the stable store.
func (s *Store) Set(key []byte, val []byte) error {
	if err := s.checkKeyValue(key, val); err != nil {
		return fmt.Errorf("stable set %q: %w", key, err)
	}
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.release()
	err := s.batchWrite(1, func(txn *badger.Txn, _ int) error {
		return txn.Set(prefixed(prefixStable, key), val)
	})
	if err != nil {
		return fmt.Errorf("stable set %q: %w", key, err)
	}
	return nil
}

// Get returns a copy of the stable-store value under key. A missing key
// returns ErrNotFound itself, unwrapped, as raft-boltdb does: raft checks
// err.Error() == "not found" to recognise a fresh store.
func (s *Store) Get(key []byte) ([]byte, error) {
	if err := s.acquire(); err != nil {
		return nil, err
	}
	defer s.release()
	return s.stableGet(key)
}

// SetUint64 durably stores val (8 bytes, big-endian) under key in the
// stable store.
func (s *Store) SetUint64(key []byte, val uint64) error {
	return s.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

// GetUint64 returns the uint64 stored under key by SetUint64. A missing key
// returns 0 and ErrNotFound, unwrapped, like Get.
func (s *Store) GetUint64(key []byte) (uint64, error) {
	if err := s.acquire(); err != nil {
		return 0, err
	}
	defer s.release()
	val, err := s.stableGet(key)
	if err != nil {
		return 0, err
	}
	if len(val) != 8 {
		return 0, fmt.Errorf("stable get %q: %w: uint64 of %d bytes", key, ErrCorrupt, len(val))
	}
	return binary.BigEndian.Uint64(val), nil
}

// stableGet is Get without the lock; the caller holds it.
func (s *Store) stableGet(key []byte) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("stable get %q: %w", key, err)
	}
	val, err := s.getValue(prefixed(prefixStable, key))
	if errors.Is(err, ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("stable get %q: %w", key, err)
	}
	return val, nil
}
