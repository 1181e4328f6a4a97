// Package config loads tide's configuration from the environment.
//
// Every setting is a field of a struct tagged for github.com/kelseyhightower/envconfig
// with its variable name, its default and a description. Load fails fast: a value that
// does not parse, or that Validate rejects, stops start-up with an error naming the
// variable. `tide config` prints every variable with its default (see Usage).
package config

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/kelseyhightower/envconfig"
)

// Validator is implemented by settings that check more than their type, for example
// a range or a choice between words. The error must name the variable.
type Validator interface {
	Validate() error
}

// Load fills spec from the environment. prefix is prepended (with "_") to every
// variable name of spec; "" uses the names as tagged. After parsing, spec.Validate is
// called when spec implements Validator.
func Load(prefix string, spec any) error {
	if err := envconfig.Process(prefix, spec); err != nil {
		var perr *envconfig.ParseError
		if errors.As(err, &perr) {
			return fmt.Errorf("config: %s=%q is not a valid %s: %w", perr.KeyName, perr.Value, perr.TypeName, perr.Err)
		}
		return fmt.Errorf("config: %w", err)
	}
	if v, ok := spec.(Validator); ok {
		if err := v.Validate(); err != nil {
			return fmt.Errorf("config: %w", withPrefix(prefix, err))
		}
	}
	return nil
}

// VarError says which variable holds a bad value and why.
type VarError struct {
	Name   string // the variable, without the Load prefix
	Value  string
	Reason string
	prefix string
}

func (e *VarError) Error() string {
	return fmt.Sprintf("%s%s=%q: %s", e.prefix, e.Name, e.Value, e.Reason)
}

// withPrefix names the variables of err as Load's caller spelled them.
func withPrefix(prefix string, err error) error {
	if prefix == "" {
		return err
	}
	var ve *VarError
	if errors.As(err, &ve) {
		ve.prefix = strings.ToUpper(prefix) + "_"
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			withPrefix(prefix, e)
		}
	}
	return err
}

// Section names one block of settings for Usage.
type Section struct {
	Prefix string
	Spec   any
}

// Usage writes every variable of the sections as a Markdown table (name, type,
// default, description), the form the README's configuration table uses. A variable
// shared by several sections is listed once.
func Usage(w io.Writer, sections ...Section) error {
	const row = "{{range .}}| `{{usage_key .}}`\t| {{usage_type .}}\t| {{if usage_default .}}{{usage_default .}}{{else}}{{.Field}}{{end}}\t| {{usage_description .}}\t|\n{{end}}"
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	fmt.Fprintln(tw, "| variable\t| type\t| default\t| description\t|")
	fmt.Fprintln(tw, "|---\t|---\t|---\t|---\t|")
	seen := map[string]bool{}
	for _, s := range sections {
		var b strings.Builder
		if err := envconfig.Usagef(s.Prefix, s.Spec, &b, row); err != nil {
			return err
		}
		for _, line := range strings.SplitAfter(b.String(), "\n") {
			key, _, _ := strings.Cut(line, "\t")
			if line == "" || seen[key] {
				continue
			}
			seen[key] = true
			fmt.Fprint(tw, line)
		}
	}
	return tw.Flush()
}

// OneOf checks that value is one of choices, naming the variable when it is not. An
// empty choice is listed as "(or empty)".
func OneOf(variable, value string, choices ...string) error {
	var named []string
	empty := ""
	for _, c := range choices {
		if value == c {
			return nil
		}
		if c == "" {
			empty = " (or empty)"
			continue
		}
		named = append(named, c)
	}
	return &VarError{Name: variable, Value: value, Reason: "must be one of " + strings.Join(named, ", ") + empty}
}

// Positive checks that value is at least 1, naming the variable when it is not.
func Positive(variable string, value int64) error {
	if value < 1 {
		return &VarError{Name: variable, Value: fmt.Sprint(value), Reason: "must be at least 1"}
	}
	return nil
}

// NotNegative checks that value is at least 0, naming the variable when it is not.
func NotNegative(variable string, value int64) error {
	if value < 0 {
		return &VarError{Name: variable, Value: fmt.Sprint(value), Reason: "must be 0 or more"}
	}
	return nil
}
