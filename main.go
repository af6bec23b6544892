// Command palyra runs a palyra mesh agent and talks to one.
package main

import (
	"os"

	"github.com/palyra-mesh/palyra/cli"
)

func main() {
	os.Exit(cli.Main(os.Args, os.Stdout, os.Stderr))
}
