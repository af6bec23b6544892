package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/dgraph-io/badger/v4"
)

// Key prefixes: one per namespace, so the raft log and the stable store
// never collide and each namespace is scanned alone (see the package doc for
// the layout).
const (
	prefixLog    = "l/"
	prefixStable = "s/"
)

const (
	// MaxKeySize is the longest stable-store key accepted, in bytes.
	MaxKeySize = 1 << 10

	// MaxValueSize is the largest value (stable value or encoded log entry)
	// an on-disk store accepts, in bytes. It stays below
	// valueLogFileSize, badger's own limit, so one value never fills a
	// value-log file by itself.
	MaxValueSize = 16 << 20

	// MaxInMemoryValueSize is the largest value an in-memory store accepts:
	// without a value log, badger keeps every value in the LSM tree, and a
	// value there may not exceed its (maximum) value threshold.
	MaxInMemoryValueSize = 1 << 20
)

// Badger tuning for a small, idle-friendly footprint. Badger's defaults are
// sized for servers (five 64 MiB memtables, a 256 MiB block cache, 1 GiB
// value-log files); an idle agent must stay well under 100 MB RSS.
const (
	// memTableSize bounds each memtable's arena. A transaction may hold 15%
	// of it (about 1.2 MiB); larger batches are split (see batchWrite).
	memTableSize = 8 << 20
	// numMemtables: one being written, one being flushed.
	numMemtables = 2
	// valueThreshold: values above it go to the value log, keeping the LSM
	// tables (and the block cache) small. Raft entries of the control plane
	// are far smaller.
	valueThreshold = 64 << 10
	// valueLogFileSize: value-log files are mmapped at twice this size
	// (sparse; only touched pages count) and reclaimed by RunGC.
	valueLogFileSize = 32 << 20
	// numLevelZeroTables: compact L0 early; stall writes only well after.
	numLevelZeroTables      = 2
	numLevelZeroTablesStall = 8
	// blockCacheSize is required because tables are Snappy-compressed.
	blockCacheSize = 4 << 20
	// indexCacheSize caps table indexes and bloom filters in memory instead
	// of holding every table's index for the life of the process.
	indexCacheSize = 2 << 20
	// numCompactors: badger's minimum (one of them prioritises L0).
	numCompactors = 2
)

// Config says where and how a Store keeps its data.
type Config struct {
	// Dir is the badger directory. It is created with mode 0700 (and
	// tightened to 0700 if it exists with broader permissions) and must be
	// dedicated to this store. Leave it "" when InMemory is set.
	Dir string

	// InMemory keeps everything in memory and nothing on disk; for tests.
	// Nothing survives Close.
	InMemory bool

	// Logger receives badger's warnings and errors (its info and debug
	// messages are dropped). Nil discards them.
	Logger *slog.Logger
}

// Validate reports every problem of the configuration at once.
func (c Config) Validate() error {
	var errs []error
	switch {
	case c.InMemory && c.Dir != "":
		errs = append(errs, errors.New("dir must be empty for an in-memory store"))
	case !c.InMemory && c.Dir == "":
		errs = append(errs, errors.New("dir is required unless in-memory"))
	}
	return errors.Join(errs...)
}

// Store is a badger database holding the raft log and the raft stable
// store. It implements raft.LogStore and raft.StableStore.
//
// A Store is safe for concurrent use. Close waits for operations in flight;
// every method called after Close returns ErrClosed.
type Store struct {
	db *badger.DB

	// maxValueSize is MaxValueSize, or MaxInMemoryValueSize in memory.
	maxValueSize int

	// mu is held shared by every operation and exclusively by Close, so
	// badger is never used after it is closed. Operations never take it
	// twice (a waiting Close would deadlock a nested RLock).
	mu     sync.RWMutex
	closed bool

	// afterDeleteChunk, when set by a test, runs after each committed chunk
	// of DeleteRange, with the shared lock held.
	afterDeleteChunk func()
}

// Open opens (or creates) the store described by cfg.
func Open(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("store config: %w", err)
	}
	if !cfg.InMemory {
		if err := preparePrivateDir(cfg.Dir); err != nil {
			return nil, err
		}
	}
	db, err := badger.Open(badgerOptions(cfg))
	if err != nil {
		if cfg.InMemory {
			return nil, fmt.Errorf("open in-memory badger: %w", err)
		}
		return nil, fmt.Errorf("open badger in %s: %w", cfg.Dir, err)
	}
	s := &Store{db: db, maxValueSize: MaxValueSize}
	if cfg.InMemory {
		s.maxValueSize = MaxInMemoryValueSize
	}
	return s, nil
}

// badgerOptions turns cfg into badger options with the footprint tuning
// above and synchronous writes (see the package doc, Durability).
func badgerOptions(cfg Config) badger.Options {
	var logger badger.Logger // nil: badger logs nothing
	if cfg.Logger != nil {
		logger = badgerLogger{l: cfg.Logger.With("component", "store")}
	}
	opts := badger.DefaultOptions(cfg.Dir).WithValueThreshold(valueThreshold)
	if cfg.InMemory {
		// Everything stays in the LSM tree; let values up to
		// MaxInMemoryValueSize in (badger rejects larger ones).
		opts = badger.DefaultOptions("").WithInMemory(true).WithValueThreshold(MaxInMemoryValueSize)
	}
	return opts.
		WithSyncWrites(true).
		WithLogger(logger).
		WithMemTableSize(memTableSize).
		WithNumMemtables(numMemtables).
		WithValueLogFileSize(valueLogFileSize).
		WithNumLevelZeroTables(numLevelZeroTables).
		WithNumLevelZeroTablesStall(numLevelZeroTablesStall).
		WithBlockCacheSize(blockCacheSize).
		WithIndexCacheSize(indexCacheSize).
		WithNumCompactors(numCompactors).
		// Every write is blind (no read-modify-write), so conflict
		// tracking would only cost memory.
		WithDetectConflicts(false).
		// Metrics would publish expvars nobody reads.
		WithMetricsEnabled(false)
}

// preparePrivateDir creates dir with mode 0700, or tightens an existing one
// to 0700: it holds the raft log and stable store, readable by the agent
// alone.
func preparePrivateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create store dir: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("stat store dir: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("store dir %s is not a directory", dir)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("restrict store dir: %w", err)
		}
	}
	return nil
}

// Close flushes and closes the database. It waits for operations in
// flight, is idempotent, and returns the close error only once.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close badger: %w", err)
	}
	return nil
}

// RunGC runs one value-log garbage-collection pass, rewriting at most one
// value-log file in which at least half the data is stale. It returns nil
// when there was nothing to rewrite (and for an in-memory store). The caller
// schedules it, e.g. every few minutes while the agent is idle, and may call
// it again while it keeps returning nil after a rewrite.
func (s *Store) RunGC() error {
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.release()
	err := s.db.RunValueLogGC(0.5)
	if errors.Is(err, badger.ErrNoRewrite) || errors.Is(err, badger.ErrGCInMemoryMode) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("value log gc: %w", err)
	}
	return nil
}

// acquire takes the shared lock for one operation, or reports ErrClosed.
// Every successful acquire is paired with release.
func (s *Store) acquire() error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	return nil
}

func (s *Store) release() { s.mu.RUnlock() }

// batchWrite applies n writes in as few transactions as badger allows:
// when write(i) does not fit in the current transaction, that one is
// committed and write(i) is retried in a fresh one. Transactions commit in
// order, so a crash part-way leaves a prefix of the writes.
// The caller holds the shared lock.
func (s *Store) batchWrite(n int, write func(txn *badger.Txn, i int) error) error {
	txn := s.db.NewTransaction(true)
	defer func() { txn.Discard() }() // no-op after Commit; sees the last txn
	for i := range n {
		err := write(txn, i)
		if errors.Is(err, badger.ErrTxnTooBig) {
			if err := txn.Commit(); err != nil {
				return err
			}
			txn = s.db.NewTransaction(true)
			err = write(txn, i)
		}
		if err != nil {
			return err
		}
	}
	return txn.Commit()
}

// getValue returns a copy of the value stored under key (never nil when
// found), or ErrNotFound. The caller holds the shared lock.
func (s *Store) getValue(key []byte) ([]byte, error) {
	var val []byte
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		val, err = item.ValueCopy(nil)
		return err
	})
	if err != nil {
		return nil, err
	}
	if val == nil {
		val = []byte{}
	}
	return val, nil
}

// checkKeyValue validates a stable-store key and value.
func (s *Store) checkKeyValue(key []byte, value []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	return s.checkValue(value)
}

// checkValue rejects a value larger than the store accepts.
func (s *Store) checkValue(value []byte) error {
	if len(value) > s.maxValueSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrValueTooLarge, len(value), s.maxValueSize)
	}
	return nil
}

func checkKey(key []byte) error {
	if len(key) == 0 || len(key) > MaxKeySize {
		return fmt.Errorf("%w: length %d, want 1..%d", ErrInvalidKey, len(key), MaxKeySize)
	}
	return nil
}

// prefixed returns prefix+key in a new slice.
func prefixed(prefix string, key []byte) []byte {
	k := make([]byte, 0, len(prefix)+len(key))
	return append(append(k, prefix...), key...)
}

// badgerLogger adapts badger's printf logger to slog, keeping warnings and
// errors only: badger's info level narrates every flush and compaction.
type badgerLogger struct{ l *slog.Logger }

var _ badger.Logger = badgerLogger{}

// Errorf logs at error level.
func (b badgerLogger) Errorf(format string, args ...any) {
	b.log(slog.LevelError, format, args)
}

// Warningf logs at warn level.
func (b badgerLogger) Warningf(format string, args ...any) {
	b.log(slog.LevelWarn, format, args)
}

// Infof drops the message.
func (badgerLogger) Infof(string, ...any) {}

// Debugf drops the message.
func (badgerLogger) Debugf(string, ...any) {}

func (b badgerLogger) log(level slog.Level, format string, args []any) {
	ctx := context.Background()
	if !b.l.Enabled(ctx, level) {
		return
	}
	b.l.Log(ctx, level, strings.TrimSpace(fmt.Sprintf(format, args...)))
}
