package pairing

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// validBundleJSON is a bundle with every field set.
func validBundleJSON(t testing.TB) []byte {
	t.Helper()
	return mustJSON(t, Bundle{
		MeshID: testMeshID, Name: "joiner-1", CACertPEM: "-----BEGIN CERTIFICATE-----", CertPEM: "-----BEGIN CERTIFICATE-----",
		Roles: []string{"node"}, Peers: []string{"/ip4/127.0.0.1/tcp/4001/p2p/12D3KooW"},
	})
}

func TestDecodeBundle(t *testing.T) {
	without := func(field string) string {
		var m map[string]any
		if err := json.Unmarshal(validBundleJSON(t), &m); err != nil {
			t.Fatal(err)
		}
		delete(m, field)
		return string(mustJSON(t, m))
	}
	blank := func(field string) string {
		var m map[string]any
		if err := json.Unmarshal(validBundleJSON(t), &m); err != nil {
			t.Fatal(err)
		}
		m[field] = ""
		return string(mustJSON(t, m))
	}
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"complete", string(validBundleJSON(t)), true},
		{"no roles or peers", without("peers"), true},
		{"no mesh id", without("mesh_id"), false},
		{"no name", without("name"), false},
		{"no CA certificate", without("ca_cert_pem"), false},
		{"no certificate", without("cert_pem"), false},
		{"blank mesh id", blank("mesh_id"), false},
		{"blank name", blank("name"), false},
		{"blank CA certificate", blank("ca_cert_pem"), false},
		{"blank certificate", blank("cert_pem"), false},
		{"empty object", "{}", false},
		{"null", "null", false},
		{"empty", "", false},
		{"not JSON", "bundle", false},
		{"wrong type", `{"mesh_id":1,"name":"a","ca_cert_pem":"x","cert_pem":"y"}`, false},
		{"array", "[]", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := decodeBundle([]byte(tt.in))
			if tt.ok {
				if err != nil || b == nil {
					t.Fatalf("decode: %v", err)
				}
				return
			}
			if err == nil || b != nil {
				t.Fatalf("decoded %+v, want an error", b)
			}
			if !strings.HasPrefix(err.Error(), "decode bundle: ") {
				t.Fatalf("error %q lacks its context", err)
			}
		})
	}
}

func TestErrorIsMatchesCode(t *testing.T) {
	err := error(&Error{Code: CodeBurned, Message: "PIN burned after 5 wrong attempts"})
	tests := []struct {
		target error
		want   bool
	}{
		{&Error{Code: CodeBurned}, true},
		{&Error{Code: CodeWrongPIN}, false},
		{errors.New("pairing failed: PIN burned after 5 wrong attempts"), false},
	}
	for _, tt := range tests {
		if got := errors.Is(err, tt.target); got != tt.want {
			t.Errorf("errors.Is(%v, %v) = %v, want %v", err, tt.target, got, tt.want)
		}
	}
	// The code and message survive the wire, as a Challenge or Result carries them.
	var back Result
	if err := json.Unmarshal(mustJSON(t, Result{Error: &Error{Code: CodeUsed, Message: "used"}}), &back); err != nil {
		t.Fatal(err)
	}
	if back.Error == nil || !errors.Is(back.Error, &Error{Code: CodeUsed}) || back.Error.Message != "used" {
		t.Fatalf("decoded %+v", back.Error)
	}
}
