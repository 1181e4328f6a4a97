package lag_test

import (
	"errors"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"function/shared/lag"
)

// TestCommittedTellsFailureFromNoCommit guards the difference between "the group
// has no commit here" (-1, which makes a new group start at INITIAL_OFFSET) and "the
// coordinator could not answer" (an error). Taking the second for the first made a
// consumer that re-joined while its coordinator was still loading offsets (a broker
// restart, a coordinator failover) start from "latest" and skip every record after
// its last commit.
func TestCommittedTellsFailureFromNoCommit(t *testing.T) {
	const group, topic = "g", "t"
	tests := []struct {
		name     string
		response func(*sarama.MockOffsetFetchResponse)
		want     map[int32]int64
		wantErr  error
	}{
		{
			name: "committed and not committed",
			response: func(r *sarama.MockOffsetFetchResponse) {
				r.SetOffset(group, topic, 0, 42, "", sarama.ErrNoError).SetOffset(group, topic, 1, -1, "", sarama.ErrNoError)
			},
			want: map[int32]int64{0: 42, 1: -1},
		},
		{
			name:     "partition missing from the answer: no commit",
			response: func(r *sarama.MockOffsetFetchResponse) { r.SetOffset(group, topic, 0, 7, "", sarama.ErrNoError) },
			want:     map[int32]int64{0: 7, 1: -1},
		},
		{
			name: "coordinator loading its offsets",
			response: func(r *sarama.MockOffsetFetchResponse) {
				r.SetError(sarama.ErrOffsetsLoadInProgress)
			},
			wantErr: sarama.ErrOffsetsLoadInProgress,
		},
		{
			name: "not the coordinator any more",
			response: func(r *sarama.MockOffsetFetchResponse) {
				r.SetError(sarama.ErrNotCoordinatorForConsumer)
			},
			wantErr: sarama.ErrNotCoordinatorForConsumer,
		},
		{
			name: "one partition failed",
			response: func(r *sarama.MockOffsetFetchResponse) {
				r.SetOffset(group, topic, 0, 42, "", sarama.ErrNoError).SetOffset(group, topic, 1, -1, "", sarama.ErrUnstableOffsetCommit)
			},
			wantErr: sarama.ErrUnstableOffsetCommit,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := sarama.NewMockBroker(t, 1)
			defer b.Close()
			fetch := sarama.NewMockOffsetFetchResponse(t)
			tt.response(fetch)
			b.SetHandlerByMap(map[string]sarama.MockResponse{
				"ApiVersionsRequest": sarama.NewMockApiVersionsResponse(t).SetApiKeys([]sarama.ApiVersionsResponseKey{
					{ApiKey: 3, MinVersion: 0, MaxVersion: 12}, // Metadata
					{ApiKey: 9, MinVersion: 0, MaxVersion: 8},  // OffsetFetch
					{ApiKey: 10, MinVersion: 0, MaxVersion: 4}, // FindCoordinator
					{ApiKey: 18, MinVersion: 0, MaxVersion: 3}, // ApiVersions
				}),
				"MetadataRequest": sarama.NewMockMetadataResponse(t).SetBroker(b.Addr(), b.BrokerID()).
					SetLeader(topic, 0, b.BrokerID()).SetLeader(topic, 1, b.BrokerID()),
				"FindCoordinatorRequest": sarama.NewMockFindCoordinatorResponse(t).SetCoordinator(sarama.CoordinatorGroup, group, b),
				"OffsetFetchRequest":     fetch,
			})
			cfg := sarama.NewConfig()
			cfg.Version = sarama.V3_9_0_0
			cfg.Metadata.Retry.Max = 0
			cfg.Net.ReadTimeout = 5 * time.Second // a request the mock cannot answer fails, not hangs
			client, err := sarama.NewClient([]string{b.Addr()}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			got, err := lag.Committed(client, group, topic, []int32{0, 1})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Committed = %v, %v; want error %v", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for p, want := range tt.want {
				if got[p] != want {
					t.Errorf("partition %d: %d, want %d (all: %v)", p, got[p], want, got)
				}
			}
		})
	}
}
