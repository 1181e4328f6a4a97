package main

import (
	"errors"
	"strings"
	"testing"
)

func TestPartitionsRejectsBadUsage(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"stray argument", map[string]string{"KAFKA_BROKERS": "127.0.0.1:1", "REDIS_ADDR": "127.0.0.1:1"}, []string{"grow"}},
		{"unknown flag", nil, []string{"-fast"}},
		{"no Kafka", map[string]string{"KAFKA_BROKERS": "", "REDIS_ADDR": "127.0.0.1:1"}, nil},
		{"no Redis", map[string]string{"KAFKA_BROKERS": "127.0.0.1:1", "REDIS_ADDR": ""}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			if err := runPartitions(t.Context(), tt.args); !errors.Is(err, errUsage) {
				t.Fatalf("runPartitions(%q) = %v, want a usage error", tt.args, err)
			}
		})
	}
	t.Run("bad variable", func(t *testing.T) {
		t.Setenv("PARTITION_GROUPS", " ")
		if err := runPartitions(t.Context(), nil); err == nil || errors.Is(err, errUsage) || !strings.Contains(err.Error(), "PARTITION_GROUPS") {
			t.Fatalf("PARTITION_GROUPS=' ': %v, want a configuration error naming it", err)
		}
	})
}
