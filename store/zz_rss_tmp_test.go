package store

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
)

func rss() string {
	b, _ := os.ReadFile("/proc/self/status")
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS") || strings.HasPrefix(l, "VmHWM") || strings.HasPrefix(l, "RssAnon") || strings.HasPrefix(l, "RssFile") {
			out = append(out, strings.Join(strings.Fields(l), " "))
		}
	}
	return strings.Join(out, ", ")
}

func TestZZRSS(t *testing.T) {
	mode := os.Getenv("RSS_MODE")
	if mode == "" {
		t.Skip()
	}
	dir := t.TempDir()
	fmt.Println("baseline:", rss())
	var s *Store
	if mode == "default" {
		db, err := badger.Open(badger.DefaultOptions(dir).WithSyncWrites(true).WithLogger(nil))
		if err != nil {
			t.Fatal(err)
		}
		s = &Store{db: db, maxValueSize: MaxValueSize}
	} else {
		var err error
		s, err = Open(Config{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
	}
	fmt.Println("opened:", rss())
	start := time.Now()
	var idx uint64 = 1
	for range 1000 { // 64k entries, 512 B each, batches of 64
		logs := makeLogs(idx, idx+63, 512)
		idx += 64
		if err := s.StoreLogs(logs); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Printf("wrote 64000 entries in %v: %s\n", time.Since(start), rss())
	var l raft.Log
	for i := uint64(1); i < idx; i += 7 {
		if err := s.GetLog(i, &l); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Println("read back:", rss())
	if err := s.DeleteRange(1, 54000); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		s.KV().Put(fmt.Sprintf("k%d", i), []byte("v"))
	}
	s.RunGC()
	runtime.GC()
	time.Sleep(3 * time.Second)
	fmt.Println("idle after delete:", rss())
	du, _ := exec.Command("du", "-sh", "--apparent-size", dir).Output()
	du2, _ := exec.Command("du", "-sh", dir).Output()
	ls, _ := exec.Command("ls", "-la", dir).Output()
	fmt.Printf("apparent %s disk %s\n%s", du, du2, ls)
	s.Close()
	fmt.Println("closed:", rss())
}
