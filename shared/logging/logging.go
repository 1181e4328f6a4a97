// Package logging builds the log/slog logger every tide program uses: JSON for
// machines (the default in a container), text when a person watches a terminal.
package logging

import (
	"io"
	"log/slog"
	"os"
	"strings"
)

// Options choose the format and level; FromEnv reads them from LOG_FORMAT and LOG_LEVEL.
type Options struct {
	Format string // "json" or "text"; empty: text on a terminal, JSON otherwise
	Level  string // debug, info, warn, error; default info
}

// FromEnv reads LOG_FORMAT and LOG_LEVEL.
func FromEnv() Options {
	return Options{Format: os.Getenv("LOG_FORMAT"), Level: os.Getenv("LOG_LEVEL")}
}

// New returns a logger writing to w.
func New(w io.Writer, o Options) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(strings.ToUpper(o.Level))); err != nil || o.Level == "" {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	format := o.Format
	if format == "" {
		format = "json"
		if f, ok := w.(*os.File); ok && isTerminal(f) {
			format = "text"
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// Discard is a logger that drops everything, for tests that do not look at logs.
func Discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
