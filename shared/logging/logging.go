// Package logging builds the log/slog logger every tide program uses: JSON for
// machines (the default in a container), text when a person watches a terminal.
package logging

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"

	"function/shared/config"
)

// Options choose the format and level; FromEnv reads them from LOG_FORMAT and LOG_LEVEL.
// The functions embed Options in their configuration, so a bad value stops start-up
// with an error naming the variable (Validate) and `tide config` lists both.
type Options struct {
	Format string `envconfig:"LOG_FORMAT" desc:"log format: json or text; empty: text on a terminal, JSON otherwise"`
	Level  string `envconfig:"LOG_LEVEL" default:"info" desc:"least severe level logged: debug, info, warn or error"`
}

// FromEnv reads LOG_FORMAT and LOG_LEVEL.
func FromEnv() Options {
	return Options{Format: os.Getenv("LOG_FORMAT"), Level: os.Getenv("LOG_LEVEL")}
}

// Validate checks both values; empty ones mean the defaults.
func (o Options) Validate() error {
	var errs []error
	if _, err := o.level(); err != nil {
		errs = append(errs, &config.VarError{Name: "LOG_LEVEL", Value: o.Level, Reason: "must be one of debug, info, warn, error"})
	}
	if f := strings.ToLower(o.Format); f != "" && f != "json" && f != "text" {
		errs = append(errs, &config.VarError{Name: "LOG_FORMAT", Value: o.Format, Reason: "must be json or text (or empty: text on a terminal, JSON otherwise)"})
	}
	return errors.Join(errs...)
}

// level parses Level as slog does (case-insensitive, "warn+2" included); empty is info.
func (o Options) level() (slog.Level, error) {
	var level slog.Level
	if o.Level == "" {
		return slog.LevelInfo, nil
	}
	err := level.UnmarshalText([]byte(o.Level))
	return level, err
}

// New returns a logger writing to w. A value Validate would refuse falls back to
// the default (info, or the format chosen by w).
func New(w io.Writer, o Options) *slog.Logger {
	level, err := o.level()
	if err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	format := strings.ToLower(o.Format)
	if format != "json" && format != "text" {
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
