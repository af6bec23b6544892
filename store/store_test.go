package store

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// openMem opens an in-memory store closed at the end of the test.
func openMem(t testing.TB) *Store {
	t.Helper()
	return openCfg(t, Config{InMemory: true})
}

// openDir opens an on-disk store in dir closed at the end of the test
// (closing twice is fine, so tests may close it earlier).
func openDir(t testing.TB, dir string) *Store {
	t.Helper()
	return openCfg(t, Config{Dir: dir})
}

func openCfg(t testing.TB, cfg Config) *Store {
	t.Helper()
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open(%+v): %v", cfg, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{name: "dir", cfg: Config{Dir: "/tmp/x"}},
		{name: "in memory", cfg: Config{InMemory: true}},
		{name: "neither", cfg: Config{}, wantErr: "dir is required"},
		{name: "both", cfg: Config{Dir: "/tmp/x", InMemory: true}, wantErr: "dir must be empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate = %v, want error containing %q", err, tt.wantErr)
			}
			if tt.wantErr != "" {
				if _, err := Open(tt.cfg); err == nil {
					t.Fatal("Open accepted an invalid config")
				}
			}
		})
	}
}

func TestOpenPrivateDir(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
	}{
		{name: "created", setup: func(*testing.T, string) {}},
		{name: "tightened", setup: func(t *testing.T, dir string) {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, 0o755); err != nil { // umask-proof
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data", "store")
			tt.setup(t, dir)
			openDir(t, dir)
			fi, err := os.Stat(dir)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != 0o700 {
				t.Fatalf("dir mode = %v, want 0700", got)
			}
		})
	}
}

func TestOpenNotADirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(Config{Dir: path}); err == nil {
		s.Close()
		t.Fatal("Open on a regular file succeeded")
	}
}

func TestOpenLockedDir(t *testing.T) {
	dir := t.TempDir()
	openDir(t, dir)
	if s, err := Open(Config{Dir: dir}); err == nil {
		s.Close()
		t.Fatal("second Open of the same dir succeeded")
	}
}

func TestCloseIdempotent(t *testing.T) {
	for _, cfg := range []Config{{InMemory: true}, {Dir: t.TempDir()}} {
		s, err := Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if err := s.Close(); err != nil {
				t.Fatalf("Close #%d: %v", i+1, err)
			}
		}
	}
}

func TestClosedStore(t *testing.T) {
	s, err := Open(Config{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	ops := map[string]func() error{
		"FirstIndex":  func() error { _, err := s.FirstIndex(); return err },
		"LastIndex":   func() error { _, err := s.LastIndex(); return err },
		"GetLog":      func() error { return s.GetLog(1, &l) },
		"StoreLog":    func() error { return s.StoreLog(&raft.Log{Index: 1}) },
		"StoreLogs":   func() error { return s.StoreLogs([]*raft.Log{{Index: 1}}) },
		"DeleteRange": func() error { return s.DeleteRange(1, 2) },
		"Set":         func() error { return s.Set([]byte("k"), []byte("v")) },
		"Get":         func() error { _, err := s.Get([]byte("k")); return err },
		"SetUint64":   func() error { return s.SetUint64([]byte("k"), 1) },
		"GetUint64":   func() error { _, err := s.GetUint64([]byte("k")); return err },
		"RunGC":       s.RunGC,
	}
	for name, op := range ops {
		t.Run(name, func(t *testing.T) {
			if err := op(); !errors.Is(err, ErrClosed) {
				t.Fatalf("%s after Close = %v, want ErrClosed", name, err)
			}
		})
	}
}

// TestCloseWhileBusy closes the store under concurrent writers and readers:
// every call either succeeds or reports ErrClosed, and the race detector
// sees no use of badger after Close.
func TestCloseWhileBusy(t *testing.T) {
	s, err := Open(Config{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := uint64(1); ; i++ {
				err := s.StoreLog(&raft.Log{Index: i, Term: uint64(w)})
				if err == nil {
					_, err = s.LastIndex()
				}
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		})
	}
	// Let the writers get going before closing underneath them.
	checkFor(t, func() bool { i, _ := s.LastIndex(); return i >= 50 })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
}

func TestPersistence(t *testing.T) {
	dir := t.TempDir()
	s := openDir(t, dir)
	logs := makeLogs(1, 50, 32)
	if err := s.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(1, 10); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]byte("LastVoteCand"), []byte("node-a")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openDir(t, dir)
	checkIndexes(t, s, 11, 50)
	for _, want := range logs[10:] {
		var got raft.Log
		if err := s.GetLog(want.Index, &got); err != nil {
			t.Fatalf("GetLog(%d): %v", want.Index, err)
		}
		checkLogEqual(t, &got, want)
	}
	if term, err := s.GetUint64([]byte("CurrentTerm")); err != nil || term != 7 {
		t.Fatalf("GetUint64(CurrentTerm) = %d, %v; want 7", term, err)
	}
	if v, err := s.Get([]byte("LastVoteCand")); err != nil || string(v) != "node-a" {
		t.Fatalf("Get(LastVoteCand) = %q, %v; want node-a", v, err)
	}
}

func TestRunGC(t *testing.T) {
	for name, s := range map[string]*Store{"memory": openMem(t), "disk": openDir(t, t.TempDir())} {
		t.Run(name, func(t *testing.T) {
			// Values above valueThreshold go to the value log; deleting
			// them leaves garbage for GC to find.
			big := makeLogs(1, 20, 2*valueThreshold)
			if err := s.StoreLogs(big); err != nil {
				t.Fatal(err)
			}
			if err := s.DeleteRange(1, 20); err != nil {
				t.Fatal(err)
			}
			if err := s.RunGC(); err != nil {
				t.Fatalf("RunGC: %v", err)
			}
		})
	}
}

func TestBadgerLogger(t *testing.T) {
	var buf bytes.Buffer
	l := badgerLogger{l: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	l.Debugf("debug %d\n", 1)
	l.Infof("info %d\n", 2)
	l.Warningf("warn %d\n", 3)
	l.Errorf("error %d\n", 4)
	out := buf.String()
	for _, absent := range []string{"debug 1", "info 2"} {
		if strings.Contains(out, absent) {
			t.Errorf("log has %q; badger info and debug must be dropped:\n%s", absent, out)
		}
	}
	for _, present := range []string{`level=WARN msg="warn 3"`, `level=ERROR msg="error 4"`} {
		if !strings.Contains(out, present) {
			t.Errorf("log lacks %q:\n%s", present, out)
		}
	}

	// A logger above warn level must not even format badger's warnings.
	quiet := badgerLogger{l: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelError}))}
	buf.Reset()
	quiet.Warningf("warn")
	if buf.Len() != 0 {
		t.Fatalf("warning logged above its level: %s", buf.String())
	}
}

func TestOpenWithLogger(t *testing.T) {
	var mu sync.Mutex
	var buf bytes.Buffer
	h := slog.NewTextHandler(&lockedWriter{mu: &mu, w: &buf}, &slog.HandlerOptions{Level: slog.LevelDebug})
	s := openCfg(t, Config{Dir: t.TempDir(), Logger: slog.New(h)})
	if err := s.StoreLogs(makeLogs(1, 100, 16)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	// Open, write and close are routine: badger must have nothing to warn about.
	if buf.Len() != 0 {
		t.Fatalf("badger logged during routine use:\n%s", buf.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// checkFor polls cond until it holds, failing the test after 10 seconds.
func checkFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// badgerTxn shortens batchWrite callbacks in tests that write raw records.
type badgerTxn = badger.Txn
