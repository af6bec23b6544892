package agent

import (
	"strings"
	"testing"
)

func TestJoinCodeRoundTrip(t *testing.T) {
	c := joinCode{PIN: "123456", MeshID: "m", CAFingerprint: "ab", Peers: []string{"/ip4/127.0.0.1/tcp/7420/p2p/x"}}
	pin, got, err := parseJoinInput(encodeJoinCode(c))
	if err != nil || pin != "123456" || got.MeshID != "m" || got.CAFingerprint != "ab" || len(got.Peers) != 1 {
		t.Fatalf("round trip: %q %+v %v", pin, got, err)
	}
	for _, bad := range []string{"", "12345", "1234567", "abcdef", "palyra1-", "palyra1-@@", encodeJoinCode(joinCode{PIN: "x"})} {
		if _, _, err := parseJoinInput(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func FuzzParseJoinInput(f *testing.F) {
	f.Add("123456")
	f.Add(encodeJoinCode(joinCode{PIN: "654321", MeshID: "m", Peers: []string{"/ip4/1.2.3.4/tcp/1"}}))
	f.Add("palyra1-eyJwIjoiMSJ9")
	f.Fuzz(func(t *testing.T, s string) {
		pin, _, err := parseJoinInput(s)
		if err == nil && (len(pin) != 6 || strings.Trim(pin, "0123456789") != "") {
			t.Fatalf("accepted PIN %q from %q", pin, s)
		}
	})
}
