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
	// Start registers deliver, which from then on is called with every batch
	// published on any node, in the order each publisher's batches were
	// accepted, until ctx ends. Publish works from when Start returns: the
	// backplane's own work runs in the background, and stopped is closed
	// once it has ended and released what it holds.
	Start(ctx context.Context, deliver func(tenant string, ns []payloads.Notification)) (stopped <-chan struct{}, err error)
	// Ready returns nil when publishes reach every node.
	Ready() error
}

// MemoryBackplane delivers publishes on this node only, synchronously: when
// Publish returns, the notifications are in the recipients' queues.
type MemoryBackplane struct {
	mu      sync.RWMutex
	deliver func(string, []payloads.Notification) // set while started
}

// NewMemoryBackplane returns the single-node backplane.
func NewMemoryBackplane() *MemoryBackplane { return &MemoryBackplane{} }

// ErrNotRunning is returned by a publish before the hub starts or after it stopped.
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

// Start implements Backplane.
func (b *MemoryBackplane) Start(ctx context.Context, deliver func(string, []payloads.Notification)) (<-chan struct{}, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.deliver != nil {
		return nil, errors.New("memory backplane: already started")
	}
	b.deliver = deliver
	stopped := make(chan struct{})
	context.AfterFunc(ctx, func() {
		b.mu.Lock()
		b.deliver = nil
		b.mu.Unlock()
		close(stopped)
	})
	return stopped, nil
}

// Ready implements Backplane: one node is always reachable.
func (*MemoryBackplane) Ready() error { return nil }
