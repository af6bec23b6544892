package store

import (
	"errors"
	"strings"
	"testing"
)

func TestKV(t *testing.T) {
	type step struct {
		op      string // put, get, del
		key     string
		val     string
		wantErr error
	}
	long := strings.Repeat("k", MaxKeySize+1)
	tests := []struct {
		name  string
		steps []step
	}{
		{name: "put get", steps: []step{
			{op: "put", key: "node.name", val: "gpu-1"},
			{op: "get", key: "node.name", val: "gpu-1"},
		}},
		{name: "overwrite", steps: []step{
			{op: "put", key: "a", val: "1"},
			{op: "put", key: "a", val: "2"},
			{op: "get", key: "a", val: "2"},
		}},
		{name: "delete", steps: []step{
			{op: "put", key: "a", val: "1"},
			{op: "del", key: "a"},
			{op: "get", key: "a", wantErr: ErrNotFound},
		}},
		{name: "delete missing", steps: []step{
			{op: "del", key: "never"},
		}},
		{name: "get missing", steps: []step{
			{op: "get", key: "never", wantErr: ErrNotFound},
		}},
		{name: "empty value", steps: []step{
			{op: "put", key: "a", val: ""},
			{op: "get", key: "a", val: ""},
		}},
		{name: "binary key", steps: []step{
			{op: "put", key: "\x00\xff/x", val: "v"},
			{op: "get", key: "\x00\xff/x", val: "v"},
		}},
		{name: "invalid keys", steps: []step{
			{op: "put", key: "", wantErr: ErrInvalidKey},
			{op: "get", key: "", wantErr: ErrInvalidKey},
			{op: "del", key: "", wantErr: ErrInvalidKey},
			{op: "put", key: long, wantErr: ErrInvalidKey},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kv := openMem(t).KV()
			for i, st := range tt.steps {
				var err error
				switch st.op {
				case "put":
					err = kv.Put(st.key, []byte(st.val))
				case "del":
					err = kv.Delete(st.key)
				case "get":
					var got []byte
					got, err = kv.Get(st.key)
					if err == nil && (got == nil || string(got) != st.val) {
						t.Fatalf("step %d: Get(%q) = %q, want %q", i, st.key, got, st.val)
					}
				}
				if !errors.Is(err, st.wantErr) {
					t.Fatalf("step %d: %s(%q) error = %v, want %v", i, st.op, st.key, err, st.wantErr)
				}
			}
		})
	}
}

func TestKVCopies(t *testing.T) {
	kv := openMem(t).KV()
	in := []byte("value")
	if err := kv.Put("k", in); err != nil {
		t.Fatal(err)
	}
	in[0] = 'X' // the caller may reuse its buffer after Put
	got, err := kv.Get("k")
	if err != nil || string(got) != "value" {
		t.Fatalf("Get = %q, %v; want value", got, err)
	}
	got[0] = 'Y' // and the result of Get is the caller's
	if again, _ := kv.Get("k"); string(again) != "value" {
		t.Fatalf("Get after mutating a result = %q", again)
	}
}

func TestKVValueTooLarge(t *testing.T) {
	kv := openMem(t).KV()
	err := kv.Put("k", make([]byte, MaxInMemoryValueSize+1))
	if !errors.Is(err, ErrValueTooLarge) {
		t.Fatalf("Put(huge) = %v, want ErrValueTooLarge", err)
	}
	if len(err.Error()) > 200 {
		t.Fatalf("error message carries the value: %d bytes", len(err.Error()))
	}
}

func TestKVLargeValueOnDisk(t *testing.T) {
	kv := openDir(t, t.TempDir()).KV()
	big := []byte(strings.Repeat("v", 4<<20)) // in the value log
	if err := kv.Put("big", big); err != nil {
		t.Fatalf("Put(4 MiB): %v", err)
	}
	got, err := kv.Get("big")
	if err != nil || string(got) != string(big) {
		t.Fatalf("Get(big) = %d bytes, %v; want %d bytes", len(got), err, len(big))
	}
	if err := kv.Put("huge", make([]byte, MaxValueSize+1)); !errors.Is(err, ErrValueTooLarge) {
		t.Fatalf("Put(huge) = %v, want ErrValueTooLarge", err)
	}
}
