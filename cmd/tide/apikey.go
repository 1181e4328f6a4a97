package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"function/shared/auth"
)

func init() {
	register(command{name: "apikey", summary: "make an ingest API key and print its INGEST_API_KEYS entry (or hash a key from stdin)", run: runAPIKey})
}

func runAPIKey(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("apikey", flag.ContinueOnError)
	source := fs.String("source", "*", "source pattern the key may write ('*' matches any run of characters)")
	hashOnly := fs.Bool("hash", false, "read a key from stdin and print its entry instead of making one")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() != 0 || *source == "" || strings.ContainsAny(*source, ",\n") {
		return fmt.Errorf("%w: apikey takes no arguments, and -source one pattern without commas", errUsage)
	}
	return apiKey(os.Stdin, os.Stdout, os.Stderr, *source, *hashOnly)
}

// apiKey writes the key (to stdout, once: tide keeps only its hash) and the
// configuration entry. With hashOnly it reads the key from in instead.
func apiKey(in io.Reader, out, info io.Writer, source string, hashOnly bool) error {
	if hashOnly {
		b, err := io.ReadAll(io.LimitReader(in, 4096))
		if err != nil {
			return fmt.Errorf("read key: %w", err)
		}
		key := strings.TrimSpace(string(b))
		if key == "" {
			return fmt.Errorf("%w: no key on stdin", errUsage)
		}
		fmt.Fprintf(out, "%s:%s\n", auth.Hash(key), source)
		return nil
	}
	key, hash, err := auth.Generate()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "key:   %s\nentry: %s:%s\n", key, hash, source)
	fmt.Fprintf(info, "\nGive the key to the client (Authorization: Bearer KEY, or X-API-Key); tide cannot show it again.\n"+
		"Add the entry to INGEST_API_KEYS (comma-separated) or a line of INGEST_API_KEYS_FILE, and set INGEST_AUTH=apikey.\n"+
		"The key's ID in logs and rate limits (apikey:ID) is %s.\n", hash[:12])
	return nil
}
