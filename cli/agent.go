package cli

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/palyra-mesh/palyra/agent"
)

func agentCommand() *ucli.Command {
	def := agent.DefaultConfig()
	return &ucli.Command{
		Name:  "agent",
		Usage: "run a palyra agent (creating a mesh with --init or joining one with --pin on first start)",
		Flags: []ucli.Flag{
			dataDirFlag(),
			httpFlag(),
			&ucli.StringFlag{Name: "name", Usage: "node name, unique in the mesh", Value: def.Name, EnvVars: env("name")},
			&ucli.StringSliceFlag{Name: "listen", Usage: "libp2p listen multiaddr (repeatable; default TCP+QUIC port 7420)", EnvVars: env("listen")},
			&ucli.BoolFlag{Name: "init", Usage: "create a new mesh if the data dir holds none", EnvVars: env("init")},
			&ucli.StringFlag{Name: "pin", Usage: "join a mesh with this PIN (or join code) if the data dir holds none", EnvVars: env("pin")},
			&ucli.StringSliceFlag{Name: "peer", Usage: "member multiaddr ending in /p2p/PEER_ID (repeatable)", EnvVars: env("peer")},
			&ucli.BoolFlag{Name: "coordinator", Usage: "may become a voter and coordinator", Value: true, EnvVars: env("coordinator")},
			&ucli.BoolFlag{Name: "no-mdns", Usage: "no multicast discovery", EnvVars: env("no-mdns")},
			&ucli.StringFlag{Name: "timings", Usage: "failure detection and election clocks: lan (tuned) or library (memberlist's and raft's defaults, for comparison)", Value: "lan", EnvVars: env("timings"), Hidden: true},
			&ucli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error", Value: "info", EnvVars: env("log-level")},
			&ucli.DurationFlag{Name: "cert-lifetime", Usage: "validity of node certificates this node signs as coordinator (renewed at 2/3)", Value: def.CertLifetime, EnvVars: env("cert-lifetime")},
			&ucli.DurationFlag{Name: "ca-lifetime", Usage: "validity of the CA of a mesh created with --init", Value: def.CALifetime, EnvVars: env("ca-lifetime")},
			&ucli.DurationFlag{Name: "cert-grace", Usage: "how long after expiry a node may still renew (as coordinator: accept)", Value: def.CertGrace, EnvVars: env("cert-grace")},
		},
		Action: runAgent,
	}
}

func runAgent(c *ucli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return usagef("--log-level %q: want debug, info, warn or error", c.String("log-level"))
	}
	var err error
	cfg := agent.DefaultConfig()
	cfg.DataDir = c.String("data-dir")
	cfg.HTTPAddr = c.String("http")
	cfg.Name = c.String("name")
	cfg.Listen = c.StringSlice("listen")
	cfg.Init = c.Bool("init")
	cfg.PIN = strings.TrimSpace(c.String("pin"))
	cfg.Peers = c.StringSlice("peer")
	cfg.Coordinator = c.Bool("coordinator")
	cfg.MDNS = !c.Bool("no-mdns")
	cfg.CertLifetime = c.Duration("cert-lifetime")
	cfg.CertGrace = c.Duration("cert-grace")
	cfg.CALifetime = c.Duration("ca-lifetime")
	cfg.Version = Version
	if cfg.Timings, err = agent.TimingsByName(c.String("timings")); err != nil {
		return usageError{err: err}
	}
	cfg.Logger = slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: level}))
	a, err := agent.New(cfg)
	if err != nil {
		return usageError{err: err}
	}

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	ctx, cancel := context.WithCancel(c.Context)
	defer cancel()
	go func() {
		select {
		case <-sigs:
			cancel() // a signal during pairing aborts it
		case <-ctx.Done():
		}
	}()
	if err := a.Start(ctx); err != nil {
		return err
	}
	cancel()
	fatal := make(chan error, 1)
	go func() { fatal <- a.Wait() }()
	select {
	case err := <-fatal:
		a.Close()
		return err
	case <-sigs:
	}
	cfg.Logger.Info("leaving the mesh (signal again to stop at once)")
	done := make(chan struct{})
	go func() {
		lctx, lcancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer lcancel()
		if err := a.Leave(lctx); err != nil {
			cfg.Logger.Warn("leave", "err", err)
		}
		a.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-sigs:
	}
	return nil
}
