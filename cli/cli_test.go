package cli

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/palyra-mesh/palyra/ca"
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
		{"unknown subcommand", []string{"nodes", "bogus"}, 2, `unknown command "bogus"`},
		{"help for an unknown command", []string{"help", "bogus"}, 2, `unknown command "bogus"`},
		{"help of a leaf", []string{"status", "help", "--data-dir", dir}, 2, "takes no arguments"},
		{"ttl too short", []string{"pair", "--ttl", "10s", "--data-dir", dir}, 2, "--ttl 10s: want 30s to 24h"},
		{"ttl too long", []string{"pair", "--ttl", "25h", "--data-dir", dir}, 2, "--ttl 25h: want 30s to 24h"},
		{"ttl not a duration", []string{"pair", "--ttl", "soon", "--data-dir", dir}, 2, "ttl"},
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

// TestUsageErrorNamesHelp: a usage error points at the --help of the
// command that was run.
func TestUsageErrorNamesHelp(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main([]string{"palyra", "nodes", "show"}, &out, &errb); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	if !strings.Contains(errb.String(), "(see palyra nodes show --help)") {
		t.Fatalf("stderr %q does not point at the command's help", errb.String())
	}
}

// TestGroupWithoutArgsShowsHelp: a command with subcommands and no
// argument prints its help and succeeds.
func TestGroupWithoutArgsShowsHelp(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main([]string{"palyra", "nodes"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d (stderr %q)", code, errb.String())
	}
	for _, sub := range []string{"list", "show", "revoke", "approve", "reject"} {
		if !strings.Contains(out.String(), sub) {
			t.Fatalf("help does not list %s:\n%s", sub, out.String())
		}
	}
}

// TestTTLBoundsMatchCA: the CLI checks --ttl against the bounds the
// coordinator applies.
func TestTTLBoundsMatchCA(t *testing.T) {
	if defaultTTL != ca.DefaultTicketTTL || minTTL != ca.MinTicketTTL || maxTTL != ca.MaxTicketTTL {
		t.Fatalf("cli TTLs %v/%v/%v, ca %v/%v/%v", defaultTTL, minTTL, maxTTL, ca.DefaultTicketTTL, ca.MinTicketTTL, ca.MaxTicketTTL)
	}
	for d, want := range map[time.Duration]string{10 * time.Minute: "10m", 24 * time.Hour: "24h", 90 * time.Second: "1m30s", 30 * time.Second: "30s"} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%v) = %q, want %q", d, got, want)
		}
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
