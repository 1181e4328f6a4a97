package main

import (
	"context"
	"os"

	"function/functions/analytics"
	"function/functions/ingest"
	"function/functions/notification"
	"function/shared/config"
	"function/shared/growth"
)

func init() {
	register(command{name: "config", summary: "print every configuration variable with its default (a Markdown table)", run: runConfig})
}

func runConfig(context.Context, []string) error {
	return config.Usage(os.Stdout,
		config.Section{Spec: &ingest.Config{}},
		config.Section{Spec: &notification.Config{}},
		config.Section{Prefix: "NOTIFICATION", Spec: ptr(notification.ConsumerDefaults())},
		config.Section{Spec: &analytics.Config{}},
		config.Section{Prefix: "ANALYTICS", Spec: ptr(analytics.ConsumerDefaults())},
		config.Section{Spec: &growth.ManagerConfig{}}, // tide partitions
	)
}

func ptr[T any](v T) *T { return &v }
