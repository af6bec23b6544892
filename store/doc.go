// Package store is the durable local storage of a palyra agent: the raft
// log and stable store behind the coordinator election (DESIGN.md §4), in
// one badger database under the data dir (DESIGN.md §6).
//
// # What lives where
//
//	store.go   Config, Open, Close, RunGC, badger tuning, slog adapter
//	raft.go    raft.LogStore and raft.StableStore on *Store
//	codec.go   binary encoding of raft.Log (versioned, fuzzed)
//	errors.go  sentinel errors
//
// # Key layout
//
// Every key starts with a two-byte namespace prefix, so the raft log and
// the stable store never collide and each namespace is scanned alone:
//
//	l/<index: 8 bytes, big-endian>  raft log entry (codec.go). Big-endian makes
//	                                key order index order: FirstIndex and
//	                                LastIndex are one forward or reverse seek.
//	s/<key>                         raft stable store: CurrentTerm,
//	                                LastVoteTerm (uint64, 8 bytes big-endian),
//	                                LastVoteCand.
//
// # Durability
//
// The database is opened with badger's SyncWrites: every commit fsyncs the
// write-ahead log (and the value log when a value went there) before it
// returns. So StoreLog, StoreLogs, DeleteRange, Set and SetUint64 survive
// kill -9 or a power cut once they have returned nil.
// Raft requires this: a node that acknowledges an entry or a vote and then
// forgets it can elect two leaders or lose committed entries. The other
// choice, unsynced writes plus a periodic Sync, is faster but opens exactly
// that window. The cost is one fsync per commit, and raft already groups
// the entries of a round into one StoreLogs call.
//
// A batch larger than one badger transaction holds (about 1.2 MiB with
// the memtable size below) is committed as several transactions, in an
// order that never leaves a hole in the log after a crash part-way:
// StoreLogs in index order (a prefix of the batch is stored, as if fewer
// entries had arrived); DeleteRange from the top down when the range reaches
// the last entry (truncating a conflicting suffix), otherwise from the
// bottom up (compacting the head after a snapshot).
//
// The directory is created (or tightened) to mode 0700. Badger creates its
// files 0666 minus the umask; the agent sets the umask to 077 (and tightens
// files left by older versions), so they are 0600 too.
//
// # Footprint
//
// Badger's defaults are sized for servers: five 64 MiB memtables, a
// 256 MiB block cache, 1 GiB value-log files. An idle agent must stay well
// under 100 MB RSS, so Open uses two 8 MiB memtables, a 64 KiB value
// threshold (bigger values go to the value log), 32 MiB value-log files, L0
// compaction from 2 tables, a 4 MiB block cache, a 2 MiB index cache, two
// compactors, no conflict detection (every write is blind) and no metrics.
// Measured on linux/amd64 after writing 64,000 entries of 512 bytes in
// batches of 64 and deleting most of them: 16 MB live Go heap and about
// 43 MB RSS for the whole test process once the Go runtime returned its
// free pages (badger defaults: 88 MB live heap, 95 MB RSS); about 15 MB
// right after Open; peak about 120 MB while writing flat out. On disk the
// value log and the memtable's write-ahead log are preallocated sparse files
// (64 MiB and 16 MiB apparent size), so du shows far less than ls.
//
// Nothing here runs in the background beyond badger's own compaction:
// value-log garbage is reclaimed only by RunGC, which the caller schedules.
//
// # Concurrency
//
// A Store is safe for concurrent use, as raft requires (its main loop,
// replication and snapshot goroutines call in at once). Close waits for the
// operations in flight; after it every method returns ErrClosed.
package store
