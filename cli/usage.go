package cli

import (
	"fmt"
	"strings"

	ucli "github.com/urfave/cli/v2"
)

// usageError marks a mistake in the command line: Main prints it as one
// line and exits with status 2.
type usageError struct {
	err error
	// help names the command whose --help explains the mistake, or "".
	help string
}

func (u usageError) Error() string {
	if u.help == "" {
		return u.err.Error()
	}
	return fmt.Sprintf("%s (see %s --help)", u.err, u.help)
}

func (u usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error {
	return usageError{err: fmt.Errorf(format, args...)}
}

// usageIn is a usage error of the command running in c: the message points
// at that command's --help.
func usageIn(c *ucli.Context, format string, args ...any) error {
	return usageError{err: fmt.Errorf(format, args...), help: c.Command.HelpName}
}

// onUsageError takes over flag parsing errors (unknown flag, bad or missing
// value, also from PALYRA_* variables), which urfave would otherwise answer
// with "Incorrect Usage" and the whole help on stdout.
func onUsageError(c *ucli.Context, err error, _ bool) error {
	return usageError{err: err, help: c.Command.HelpName}
}

// unknownCommand is the error for a NAME that is not a subcommand of the
// command running in c.
func unknownCommand(c *ucli.Context, name string) error {
	return usageIn(c, "unknown command %q for %q", name, c.Command.HelpName)
}

// strict makes every command of the tree below cmds keep the contract for
// usage mistakes, so a command added later cannot forget to:
//   - a flag error is a usageError, not urfave's help dump;
//   - a command with subcommands refuses an argument that names none of
//     them (urfave would print an "unknown command" line and succeed), and
//     without arguments prints its help;
//   - a leaf has no `help` subcommand, so `nodes show help` shows the node
//     called help and `status help` is refused like any stray argument.
func strict(cmds []*ucli.Command) {
	for _, cmd := range cmds {
		cmd.OnUsageError = onUsageError
		if len(cmd.Subcommands) == 0 {
			cmd.HideHelpCommand = true
			continue
		}
		cmd.Action = groupAction(cmd.Action, ucli.ShowSubcommandHelp)
		strict(cmd.Subcommands)
	}
}

// groupAction is the action of a command with subcommands: urfave runs it
// only when the first argument names no subcommand, so any argument is an
// unknown command. Without arguments it runs action, or shows help if the
// command has none.
func groupAction(action ucli.ActionFunc, help ucli.ActionFunc) ucli.ActionFunc {
	return func(c *ucli.Context) error {
		if c.Args().Present() {
			return unknownCommand(c, c.Args().First())
		}
		if action == nil {
			return help(c)
		}
		return action(c)
	}
}

// noArgs refuses stray positional arguments.
func noArgs(c *ucli.Context) error {
	if c.Args().Len() > 0 {
		return usageIn(c, "%s takes no arguments, got %q", commandPath(c), c.Args().First())
	}
	return nil
}

// commandPath names the running command below the app ("nodes show"), for
// messages that Main already prefixes with "palyra: ".
func commandPath(c *ucli.Context) string {
	return strings.TrimPrefix(c.Command.HelpName, c.App.HelpName+" ")
}
