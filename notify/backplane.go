package notify

import (
	"context"
	"errors"
	"sync"

	"notifyhub/payloads"
)

// Backplane carries publishes to every node of a deployment, this one
// included. Implementations: the in-memory backplane (one node, the default)
// and Redis.
type Backplane interface {
	// Publish accepts notifications of tenant for delivery on every node. An
	// error means they may not reach every node and the publisher must be told.
	Publish(ctx context.Context, tenant string, ns []payloads.Notification) error
	// Run calls deliver with every batch published on any node, in the order
	// each publisher's batches were accepted, until ctx ends.
	Run(ctx context.Context, deliver func(tenant string, ns []payloads.Notification)) error
	// Ready returns nil when publishes reach every node.
	Ready() error
}

// MemoryBackplane delivers publishes on this node only, synchronously: when
// Publish returns, the notifications are in the recipients' queues.
type MemoryBackplane struct {
	mu      sync.RWMutex
	deliver func(string, []payloads.Notification) // set while Run runs
}

// NewMemoryBackplane returns the single-node backplane.
func NewMemoryBackplane() *MemoryBackplane { return &MemoryBackplane{} }

// ErrNotRunning is returned by a publish before the hub runs or after it stopped.
var ErrNotRunning = errors.New("the hub is not running")

// Publish implements Backplane.
func (b *MemoryBackplane) Publish(_ context.Context, tenant string, ns []payloads.Notification) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.deliver == nil {
		return ErrNotRunning
	}
	b.deliver(tenant, ns)
	return nil
}

// Run implements Backplane.
func (b *MemoryBackplane) Run(ctx context.Context, deliver func(string, []payloads.Notification)) error {
	b.mu.Lock()
	b.deliver = deliver
	b.mu.Unlock()
	<-ctx.Done()
	b.mu.Lock()
	b.deliver = nil
	b.mu.Unlock()
	return nil
}

// Ready implements Backplane: one node is always reachable.
func (*MemoryBackplane) Ready() error { return nil }
