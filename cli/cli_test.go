package cli

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	ucli "github.com/urfave/cli/v2"
)

// TestUsageErrors: usage mistakes exit 2 with one clear line on stderr;
// runtime failures exit 1.
func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown command", []string{"bogus"}, 2, "unknown command"},
		{"unknown flag", []string{"status", "--bogus"}, 2, "bogus"},
		{"show without name", []string{"nodes", "show", "--data-dir", dir}, 2, "exactly one NAME"},
		{"stray argument", []string{"status", "extra", "--data-dir", dir}, 2, "takes no arguments"},
		{"init and pin", []string{"agent", "--data-dir", filepath.Join(dir, "x"), "--init", "--pin", "123456", "--no-mdns"}, 2, "exclude each other"},
		{"bad log level", []string{"agent", "--data-dir", dir, "--log-level", "loud"}, 2, "--log-level"},
		{"bad peer", []string{"agent", "--data-dir", dir, "--peer", "not-an-addr"}, 2, "--peer"},
		{"no mesh, no flag", []string{"agent", "--data-dir", filepath.Join(dir, "empty"), "--http", "127.0.0.1:0", "--no-mdns"}, 1, "--init"},
		{"no agent running", []string{"status", "--data-dir", filepath.Join(dir, "none")}, 1, "no local credential"},
		{"bad PIN", []string{"agent", "--data-dir", filepath.Join(dir, "p"), "--http", "127.0.0.1:0", "--pin", "12ab56", "--peer", "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWGkxN4tGR3eEvgGSBwuNRi3KqHMHXgqp16LNUiz94srV7", "--no-mdns"}, 2, "--pin"},
		{"bad join code", []string{"agent", "--data-dir", filepath.Join(dir, "p"), "--pin", "palyra1-!!", "--no-mdns"}, 2, "join code"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Main(append([]string{"palyra"}, tt.args...), &out, &errb)
			if code != tt.code {
				t.Fatalf("exit %d, want %d (stderr %q)", code, tt.code, errb.String())
			}
			msg := strings.TrimSpace(errb.String())
			if !strings.Contains(msg, tt.want) || strings.Count(msg, "\n") > 0 {
				t.Fatalf("stderr %q: want one line mentioning %q", msg, tt.want)
			}
		})
	}
}

func TestInterspersedFlags(t *testing.T) {
	app := appForTest()
	got := interspersed(app, []string{"palyra", "nodes", "show", "alpha", "--json", "--http", "h:1"})
	want := []string{"palyra", "nodes", "show", "--json", "--http", "h:1", "alpha"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func appForTest() *ucli.App { return newApp(&bytes.Buffer{}, &bytes.Buffer{}) }
