package cli

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/palyra-mesh/palyra/agent"
	"github.com/palyra-mesh/palyra/client"
)

// env names the environment variable of a flag: PALYRA_<FLAG_IN_CAPS>.
func env(flag string) []string {
	return []string{"PALYRA_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))}
}

func dataDirFlag() ucli.Flag {
	return &ucli.StringFlag{Name: "data-dir", Usage: "agent data directory", Value: agent.DefaultDataDir(), EnvVars: env("data-dir")}
}

func httpFlag() ucli.Flag {
	return &ucli.StringFlag{Name: "http", Usage: "agent HTTP API address", Value: agent.DefaultHTTPAddr, EnvVars: env("http")}
}

// clientFlags are the flags every client command takes.
func clientFlags(extra ...ucli.Flag) []ucli.Flag {
	return append([]ucli.Flag{
		dataDirFlag(),
		httpFlag(),
		&ucli.StringFlag{Name: "token", Usage: "API token (default: the local credential in --data-dir)", EnvVars: env("token")},
		&ucli.BoolFlag{Name: "json", Usage: "print one JSON document", EnvVars: env("json")},
	}, extra...)
}

// newClient builds the API client from the command's flags.
func newClient(c *ucli.Context) (*client.Client, error) {
	tok := c.String("token")
	if tok == "" {
		t, err := agent.ReadAdminToken(c.String("data-dir"))
		if err != nil {
			return nil, err
		}
		tok = t
	}
	return client.New(c.String("http"), tok), nil
}

func cmdContext(c *ucli.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.Context, 30*time.Second)
}

// printJSON writes v as indented JSON.
func printJSON(c *ucli.Context, v any) error {
	enc := json.NewEncoder(c.App.Writer)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
