package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"function/functions/analytics"
	"function/functions/ingest"
	"function/functions/notification"
	"function/shared/config"
	"function/shared/growth"
	"function/shared/logging"
)

func init() {
	register(command{name: "config", summary: "print every configuration variable with its default (a Markdown table)", run: runConfig})
}

// processSettings are the variables the programs read themselves, outside any
// function's configuration; they are here to be listed (function.go reads
// TIDE_FUNCTION, tide run and tide serve TIDE_HTTP_ADDR).
type processSettings struct {
	Function string `envconfig:"TIDE_FUNCTION" desc:"functions a process runs: ingest, notification, analytics, all, or a comma-separated list (required by the deployed function and tide serve; tide run runs all)"`
	HTTPAddr string `envconfig:"TIDE_HTTP_ADDR" default:"127.0.0.1:8080" desc:"listen address of tide run and tide serve (-addr wins); a deployed function listens where the func runtime says (PORT)"`
}

func runConfig(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("config", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: tide config\n\nprints every configuration variable with its type, default and description (the README's table)")
	}
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: config takes no arguments", errUsage)
	}
	return writeConfig(os.Stdout)
}

// writeConfig writes the table of every variable tide reads.
func writeConfig(w io.Writer) error {
	return config.Usage(w,
		config.Section{Spec: &processSettings{}},
		config.Section{Spec: &logging.Options{}},
		config.Section{Spec: &ingest.Config{}},
		config.Section{Spec: &notification.Config{}},
		config.Section{Prefix: "NOTIFICATION", Spec: ptr(notification.ConsumerDefaults())},
		config.Section{Spec: &analytics.Config{}},
		config.Section{Prefix: "ANALYTICS", Spec: ptr(analytics.ConsumerDefaults())},
		config.Section{Spec: &growth.ManagerConfig{}}, // tide partitions
	)
}

func ptr[T any](v T) *T { return &v }
