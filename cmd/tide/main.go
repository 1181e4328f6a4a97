// Command tide runs the tide pipeline locally and the tools around it: replaying
// files into ingest, generating load, verifying delivery guarantees, simulating
// autoscaling, handling dead letters.
//
// Each subcommand lives in its own file and registers itself in an init function, so
// adding one touches no other file. main only wires: a signal context, the chosen
// subcommand, an exit code.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// command is one subcommand of tide.
type command struct {
	name    string
	summary string
	// run executes the subcommand. ctx is cancelled on the first SIGINT/SIGTERM (a
	// graceful drain); a second signal exits at once.
	run func(ctx context.Context, args []string) error
}

var commands = map[string]command{}

func register(c command) {
	if _, dup := commands[c.name]; dup {
		panic("tide: command registered twice: " + c.name)
	}
	commands[c.name] = c
}

// errUsage marks an error that is the user's: exit code 2, no stack of wrapping.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signalContext()
	code := runMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// runMain runs the command args name and returns the exit code: 0 on success and
// when help was asked for (tide help, tide -h, tide help CMD, tide CMD -h), 2 for a
// usage error (an unknown command, a bad flag), 1 for any other failure.
func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	name, rest := args[0], args[1:]
	switch name {
	case "-h", "-help", "--help", "help":
		if name != "help" || len(rest) == 0 {
			usage(stdout)
			return 0
		}
		// tide help CMD: the command's own flags.
		name, rest = rest[0], []string{"-h"}
	}
	c, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "tide: unknown command %q\n\n", name)
		usage(stderr)
		return 2
	}
	if err := c.run(ctx, rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "tide %s: %v\n", c.name, err)
		if errors.Is(err, errUsage) {
			return 2
		}
		return 1
	}
	return 0
}

// signalContext is cancelled by the first SIGINT or SIGTERM; the second ends the
// process at once, for when a drain hangs.
func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ch
		cancel()
		<-ch
		fmt.Fprintln(os.Stderr, "tide: second signal, exiting now")
		os.Exit(130)
	}()
	return ctx, func() { signal.Stop(ch); cancel() }
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: tide <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'tide <command> -h' (or 'tide help <command>') for a command's flags.")
}
