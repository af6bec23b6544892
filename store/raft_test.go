package store

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
)

// makeLogs returns entries first..last with dataLen bytes of data each,
// cycling through every field so round trips are checked field by field.
func makeLogs(first, last uint64, dataLen int) []*raft.Log {
	var logs []*raft.Log
	for i := first; i <= last; i++ {
		data := bytes.Repeat([]byte{byte(i)}, dataLen)
		l := &raft.Log{
			Index: i,
			Term:  i/10 + 1,
			Type:  raft.LogType(i % 6),
			Data:  data,
		}
		if i%3 == 0 {
			l.Extensions = []byte(fmt.Sprintf("ext-%d", i))
		}
		if i%2 == 0 {
			l.AppendedAt = time.Unix(1_700_000_000+int64(i), int64(i)*1000)
		}
		logs = append(logs, l)
	}
	return logs
}

func checkLogEqual(t testing.TB, got, want *raft.Log) {
	t.Helper()
	if got.Index != want.Index || got.Term != want.Term || got.Type != want.Type ||
		!bytes.Equal(got.Data, want.Data) || !bytes.Equal(got.Extensions, want.Extensions) ||
		!got.AppendedAt.Equal(want.AppendedAt) || got.AppendedAt.IsZero() != want.AppendedAt.IsZero() {
		t.Fatalf("log %d differs:\n got  %+v\n want %+v", want.Index, got, want)
	}
}

func checkIndexes(t testing.TB, s *Store, first, last uint64) {
	t.Helper()
	gotFirst, err := s.FirstIndex()
	if err != nil {
		t.Fatalf("FirstIndex: %v", err)
	}
	gotLast, err := s.LastIndex()
	if err != nil {
		t.Fatalf("LastIndex: %v", err)
	}
	if gotFirst != first || gotLast != last {
		t.Fatalf("FirstIndex, LastIndex = %d, %d; want %d, %d", gotFirst, gotLast, first, last)
	}
}

func checkMissing(t testing.TB, s *Store, index uint64) {
	t.Helper()
	var l raft.Log
	if err := s.GetLog(index, &l); err != raft.ErrLogNotFound { // raft compares with ==
		t.Fatalf("GetLog(%d) = %v, want raft.ErrLogNotFound", index, err)
	}
}

func TestLogStoreEmpty(t *testing.T) {
	s := openMem(t)
	checkIndexes(t, s, 0, 0)
	for _, idx := range []uint64{0, 1, math.MaxUint64} {
		checkMissing(t, s, idx)
	}
	if err := s.StoreLogs(nil); err != nil {
		t.Fatalf("StoreLogs(nil): %v", err)
	}
	if err := s.DeleteRange(1, 10); err != nil {
		t.Fatalf("DeleteRange on empty log: %v", err)
	}
	checkIndexes(t, s, 0, 0)
}

func TestLogStoreRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		log  raft.Log
	}{
		{name: "zero index", log: raft.Log{}},
		{name: "all fields", log: raft.Log{
			Index: 42, Term: 7, Type: raft.LogConfiguration,
			Data: []byte("data"), Extensions: []byte("ext"),
			AppendedAt: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC),
		}},
		{name: "max index", log: raft.Log{Index: math.MaxUint64, Term: math.MaxUint64, Type: raft.LogBarrier}},
		{name: "unknown type", log: raft.Log{Index: 9, Type: raft.LogType(200)}},
		{name: "time before 1970", log: raft.Log{Index: 3, AppendedAt: time.Date(1900, 1, 1, 0, 0, 0, 999, time.UTC)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openMem(t)
			if err := s.StoreLog(&tt.log); err != nil {
				t.Fatal(err)
			}
			var got raft.Log
			if err := s.GetLog(tt.log.Index, &got); err != nil {
				t.Fatal(err)
			}
			checkLogEqual(t, &got, &tt.log)
			checkIndexes(t, s, tt.log.Index, tt.log.Index)
		})
	}
}

func TestLogStoreOverwrite(t *testing.T) {
	s := openMem(t)
	if err := s.StoreLogs(makeLogs(1, 5, 8)); err != nil {
		t.Fatal(err)
	}
	// A follower replaces a conflicting suffix with the leader's entries.
	repl := &raft.Log{Index: 3, Term: 99, Data: []byte("leader's")}
	if err := s.StoreLog(repl); err != nil {
		t.Fatal(err)
	}
	var got raft.Log
	if err := s.GetLog(3, &got); err != nil {
		t.Fatal(err)
	}
	checkLogEqual(t, &got, repl)
	checkIndexes(t, s, 1, 5)
}

func TestLogStoreGaps(t *testing.T) {
	s := openMem(t)
	// Allowed by raft.LogStore (e.g. after restoring a snapshot).
	logs := []*raft.Log{{Index: 5}, {Index: 6}, {Index: 1000}, {Index: 1 << 40}}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	checkIndexes(t, s, 5, 1<<40)
	checkMissing(t, s, 7)
	if err := s.DeleteRange(6, 1<<40-1); err != nil {
		t.Fatal(err)
	}
	checkIndexes(t, s, 5, 1<<40)
	checkMissing(t, s, 6)
	checkMissing(t, s, 1000)
}

func TestDeleteRange(t *testing.T) {
	tests := []struct {
		name        string
		min, max    uint64
		first, last uint64   // expected afterwards; 0, 0 when empty
		gone        []uint64 // indexes that must be missing
		kept        []uint64 // indexes that must remain
	}{
		{name: "head", min: 1, max: 3, first: 4, last: 10, gone: []uint64{1, 2, 3}, kept: []uint64{4}},
		{name: "tail", min: 8, max: 10, first: 1, last: 7, gone: []uint64{8, 10}, kept: []uint64{7}},
		{name: "middle", min: 4, max: 6, first: 1, last: 10, gone: []uint64{4, 5, 6}, kept: []uint64{3, 7}},
		{name: "single first", min: 1, max: 1, first: 2, last: 10, gone: []uint64{1}, kept: []uint64{2}},
		{name: "single last", min: 10, max: 10, first: 1, last: 9, gone: []uint64{10}, kept: []uint64{9}},
		{name: "all exact", min: 1, max: 10, gone: []uint64{1, 5, 10}},
		{name: "all wide", min: 0, max: math.MaxUint64, gone: []uint64{1, 10}},
		{name: "overlapping head", min: 0, max: 2, first: 3, last: 10, gone: []uint64{1, 2}},
		{name: "overlapping tail", min: 9, max: 100, first: 1, last: 8, gone: []uint64{9, 10}},
		{name: "beyond", min: 11, max: 20, first: 1, last: 10, kept: []uint64{1, 10}},
		{name: "before", min: 0, max: 0, first: 1, last: 10, kept: []uint64{1}},
		{name: "inverted", min: 6, max: 4, first: 1, last: 10, kept: []uint64{4, 5, 6}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openMem(t)
			if err := s.StoreLogs(makeLogs(1, 10, 8)); err != nil {
				t.Fatal(err)
			}
			if err := s.DeleteRange(tt.min, tt.max); err != nil {
				t.Fatalf("DeleteRange(%d, %d): %v", tt.min, tt.max, err)
			}
			checkIndexes(t, s, tt.first, tt.last)
			for _, idx := range tt.gone {
				checkMissing(t, s, idx)
			}
			for _, idx := range tt.kept {
				var l raft.Log
				if err := s.GetLog(idx, &l); err != nil {
					t.Fatalf("GetLog(%d): %v", idx, err)
				}
			}
		})
	}
}

// TestLargeBatch stores 10k entries in one call (more than one badger
// transaction holds with the small memtables) and deletes them in ranges
// spanning several DeleteRange chunks, checking after every committed chunk
// that the log has no hole: a crash there must leave a contiguous log.
func TestLargeBatch(t *testing.T) {
	const n = 10_000
	for name, s := range map[string]*Store{"memory": openMem(t), "disk": openDir(t, t.TempDir())} {
		t.Run(name, func(t *testing.T) {
			logs := makeLogs(1, n, 256) // ~2.7 MB: over two transactions' worth
			if err := s.StoreLogs(logs); err != nil {
				t.Fatalf("StoreLogs(%d entries): %v", n, err)
			}
			checkIndexes(t, s, 1, n)
			for _, idx := range []uint64{1, 2, n / 2, n - 1, n} {
				var got raft.Log
				if err := s.GetLog(idx, &got); err != nil {
					t.Fatalf("GetLog(%d): %v", idx, err)
				}
				checkLogEqual(t, &got, logs[idx-1])
			}

			chunks := 0
			s.afterDeleteChunk = func() {
				chunks++
				checkContiguous(t, s)
			}
			defer func() { s.afterDeleteChunk = nil }()

			// Suffix truncation, top down, over two chunks.
			if err := s.DeleteRange(n/2+1, n); err != nil {
				t.Fatal(err)
			}
			checkIndexes(t, s, 1, n/2)
			checkMissing(t, s, n/2+1)
			// Head compaction, bottom up, over two chunks.
			if err := s.DeleteRange(1, n/2-10); err != nil {
				t.Fatal(err)
			}
			checkIndexes(t, s, n/2-9, n/2)
			checkMissing(t, s, n/2-10)
			if chunks < 4 {
				t.Fatalf("deleted in %d chunks, want at least 4 to cover chunking", chunks)
			}
			if err := s.DeleteRange(0, math.MaxUint64); err != nil {
				t.Fatal(err)
			}
			checkIndexes(t, s, 0, 0)
		})
	}
}

// checkContiguous fails unless the log indexes are consecutive. It runs
// inside DeleteRange, which holds the shared lock, so it reads badger
// directly.
func checkContiguous(t testing.TB, s *Store) {
	t.Helper()
	var prev uint64
	err := s.db.View(func(txn *badgerTxn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixLog)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			idx, err := logIndex(it.Item().Key())
			if err != nil {
				return err
			}
			if prev != 0 && idx != prev+1 {
				return fmt.Errorf("hole in the log: %d follows %d", idx, prev)
			}
			prev = idx
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestStoreLogTooLarge(t *testing.T) {
	s := openMem(t)
	err := s.StoreLog(&raft.Log{Index: 1, Data: make([]byte, MaxInMemoryValueSize+1)})
	if !errors.Is(err, ErrValueTooLarge) {
		t.Fatalf("StoreLog(huge) = %v, want ErrValueTooLarge", err)
	}
	checkIndexes(t, s, 0, 0)
}

func TestGetLogCorrupt(t *testing.T) {
	tests := []struct {
		name string
		key  []byte
		val  []byte
	}{
		{name: "garbage", key: logKey(1), val: []byte{0xff, 0xff, 0xff}},
		{name: "empty", key: logKey(1), val: nil},
		{name: "index mismatch", key: logKey(1), val: encodeLog(nil, &raft.Log{Index: 2})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openMem(t)
			if err := s.batchWrite(1, func(txn *badgerTxn, _ int) error { return txn.Set(tt.key, tt.val) }); err != nil {
				t.Fatal(err)
			}
			var l raft.Log
			if err := s.GetLog(1, &l); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("GetLog = %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestCorruptLogKey(t *testing.T) {
	s := openMem(t)
	bad := []byte(prefixLog + "short")
	if err := s.batchWrite(1, func(txn *badgerTxn, _ int) error { return txn.Set(bad, nil) }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FirstIndex(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("FirstIndex = %v, want ErrCorrupt", err)
	}
}

func TestStableStore(t *testing.T) {
	type step struct {
		op      string // set, get, setu, getu
		key     string
		val     string
		u       uint64
		wantErr error
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{name: "set get", steps: []step{
			{op: "set", key: "LastVoteCand", val: "node-a"},
			{op: "get", key: "LastVoteCand", val: "node-a"},
			{op: "set", key: "LastVoteCand", val: "node-b"},
			{op: "get", key: "LastVoteCand", val: "node-b"},
		}},
		{name: "empty value", steps: []step{
			{op: "set", key: "k", val: ""},
			{op: "get", key: "k", val: ""},
		}},
		{name: "uint64", steps: []step{
			{op: "setu", key: "CurrentTerm", u: 1},
			{op: "getu", key: "CurrentTerm", u: 1},
			{op: "setu", key: "CurrentTerm", u: math.MaxUint64},
			{op: "getu", key: "CurrentTerm", u: math.MaxUint64},
			{op: "setu", key: "CurrentTerm", u: 0},
			{op: "getu", key: "CurrentTerm", u: 0},
		}},
		{name: "missing", steps: []step{
			{op: "get", key: "LastVoteCand", wantErr: ErrNotFound},
			{op: "getu", key: "CurrentTerm", wantErr: ErrNotFound},
		}},
		{name: "uint64 of wrong size", steps: []step{
			{op: "set", key: "CurrentTerm", val: "abc"},
			{op: "getu", key: "CurrentTerm", wantErr: ErrCorrupt},
		}},
		{name: "invalid key", steps: []step{
			{op: "set", key: "", wantErr: ErrInvalidKey},
			{op: "get", key: "", wantErr: ErrInvalidKey},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openMem(t)
			for i, st := range tt.steps {
				var err error
				switch st.op {
				case "set":
					err = s.Set([]byte(st.key), []byte(st.val))
				case "setu":
					err = s.SetUint64([]byte(st.key), st.u)
				case "get":
					var got []byte
					got, err = s.Get([]byte(st.key))
					if err == nil && (got == nil || string(got) != st.val) {
						t.Fatalf("step %d: Get(%q) = %q, want %q", i, st.key, got, st.val)
					}
				case "getu":
					var got uint64
					got, err = s.GetUint64([]byte(st.key))
					if got != st.u {
						t.Fatalf("step %d: GetUint64(%q) = %d, want %d", i, st.key, got, st.u)
					}
				}
				if !errors.Is(err, st.wantErr) {
					t.Fatalf("step %d: %s(%q) error = %v, want %v", i, st.op, st.key, err, st.wantErr)
				}
				// raft recognises a fresh store by this exact message.
				if st.wantErr == ErrNotFound && err.Error() != "not found" {
					t.Fatalf("step %d: missing key error = %q, want exactly \"not found\"", i, err)
				}
			}
		})
	}
}

// TestNamespaces checks that the stable store and the raft log do not see
// each other.
func TestNamespaces(t *testing.T) {
	s := openMem(t)
	if err := s.Set([]byte("x"), []byte("stable")); err != nil {
		t.Fatal(err)
	}
	checkIndexes(t, s, 0, 0)
	// A stable key that looks like a log key stays a stable key.
	key := logKey(5)
	if err := s.Set(key, []byte("stable")); err != nil {
		t.Fatal(err)
	}
	checkIndexes(t, s, 0, 0)
	checkMissing(t, s, 5)
	// And a log entry does not show through the stable store.
	if err := s.StoreLog(&raft.Log{Index: 7, Data: []byte("log")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(logKey(7)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("stable Get(logKey(7)) = %v, want ErrNotFound", err)
	}
	if v, err := s.Get(key); err != nil || string(v) != "stable" {
		t.Fatalf("stable Get(logKey(5)) = %q, %v; want stable", v, err)
	}
}

// BenchmarkStoreLogs measures synced appends of raft-sized batches on disk.
func BenchmarkStoreLogs(b *testing.B) {
	for _, batch := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			s := openDir(b, b.TempDir())
			var next uint64 = 1
			b.ReportAllocs()
			for b.Loop() {
				logs := makeLogs(next, next+uint64(batch)-1, 128)
				next += uint64(batch)
				if err := s.StoreLogs(logs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/entry")
		})
	}
}

func TestStableLimitsAndCopies(t *testing.T) {
	s := openMem(t)
	if err := s.Set(bytes.Repeat([]byte("k"), MaxKeySize+1), []byte("v")); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("oversized key: %v", err)
	}
	if err := s.Set([]byte("big"), make([]byte, MaxInMemoryValueSize+1)); !errors.Is(err, ErrValueTooLarge) {
		t.Fatalf("oversized value: %v", err)
	}
	if err := s.Set([]byte("k"), []byte("value")); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get([]byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	got[0] = 'X' // the caller owns what Get returns
	again, err := s.Get([]byte("k"))
	if err != nil || string(again) != "value" {
		t.Fatalf("Get after changing a returned value: %q, %v", again, err)
	}
}
