package notify

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Store keeps the state that must survive a restart: the provisioned
// tenants, the tenants' webhook endpoints, and each endpoint's queue of
// pending deliveries and log of finished ones. Implementations: BoltStore
// (one embedded file, one node) and RedisStore (shared by every node).
//
// Every method is safe for concurrent use. A webhook's queue is only worked
// by one goroutine at a time (see Leaser), which the Head, SaveAttempt and
// Finish methods rely on.
type Store interface {
	// ProvisionTenant records tenant as provisioned; provisioning again
	// keeps the first record and reports created false.
	ProvisionTenant(ctx context.Context, tenant string, now time.Time) (t Tenant, created bool, err error)
	// Tenant returns tenant's record, if it is provisioned.
	Tenant(ctx context.Context, tenant string) (Tenant, bool, error)
	// DeprovisionTenant forgets tenant and deletes its webhook endpoints
	// with their queues and logs, returning the endpoints it deleted.
	DeprovisionTenant(ctx context.Context, tenant string) (existed bool, deleted []Webhook, err error)

	// CreateWebhook stores a new endpoint; it fails with ErrLimit when its
	// tenant has maxPerTenant endpoints already (0: no limit).
	CreateWebhook(ctx context.Context, w Webhook, maxPerTenant int) error
	// Webhook returns the endpoint with id, of any tenant.
	Webhook(ctx context.Context, id string) (Webhook, bool, error)
	// Webhooks returns tenant's endpoints, oldest first.
	Webhooks(ctx context.Context, tenant string) ([]Webhook, error)
	// UpdateWebhook applies change to the stored endpoint id atomically and
	// returns the result; ErrNotFound when there is none.
	UpdateWebhook(ctx context.Context, id string, change func(*Webhook) error) (Webhook, error)
	// DeleteWebhook deletes the endpoint with its queue and log.
	DeleteWebhook(ctx context.Context, id string) (bool, error)

	// Enqueue appends each delivery to the queue of its endpoint, in order.
	// A queue that already holds max deliveries (0: no limit) takes none;
	// the ids of those endpoints are returned.
	Enqueue(ctx context.Context, ds []Delivery, max int) (full []string, err error)
	// Head returns the oldest pending delivery of an endpoint.
	Head(ctx context.Context, webhookID string) (Delivery, bool, error)
	// SaveAttempt stores the head delivery d after a failed attempt.
	SaveAttempt(ctx context.Context, d Delivery) error
	// Finish removes the head delivery d from the queue and adds it to the
	// endpoint's log, which keeps the newest logSize entries.
	Finish(ctx context.Context, d Delivery, logSize int) error
	// FailPending moves every pending delivery of an endpoint to its log as
	// failed with reason, and returns how many there were.
	FailPending(ctx context.Context, webhookID, reason string, now time.Time, logSize int) (int, error)
	// Deliveries returns up to limit deliveries of an endpoint, newest
	// first: the pending ones, then the log.
	Deliveries(ctx context.Context, webhookID string, limit int) ([]Delivery, error)
	// PendingWebhooks returns the endpoints that have pending deliveries.
	PendingWebhooks(ctx context.Context) ([]string, error)

	// Close releases the store (the file lock, the connections).
	Close() error
}

// Leaser is implemented by stores shared by several nodes: a node works an
// endpoint's queue only while it holds the endpoint's lease, so that
// deliveries stay in order and are not sent twice by two nodes at once.
// Stores of one node need no leases.
type Leaser interface {
	// Lease takes or renews the lease of webhookID for owner until ttl from
	// now; false when another owner holds it.
	Lease(ctx context.Context, webhookID, owner string, ttl time.Duration) (bool, error)
	// Release gives up owner's lease of webhookID.
	Release(ctx context.Context, webhookID, owner string) error
}

// TenantWatcher is implemented by stores shared by several nodes: every
// node is told when a tenant is deprovisioned on any of them, so that it can
// close the tenant's connections.
type TenantWatcher interface {
	// WatchDeprovisioned calls fn with every tenant deprovisioned on any
	// node until ctx ends; it reconnects by itself.
	WatchDeprovisioned(ctx context.Context, fn func(tenant string)) error
}

// Errors of the stores, wrapped with details.
var (
	ErrNotFound = errors.New("not found")
	ErrLimit    = errors.New("limit reached")
)

// Tenant is a provisioned tenant.
type Tenant struct {
	ID            string    `json:"id"`
	ProvisionedAt time.Time `json:"provisionedAt"`
}

// Webhook is an endpoint that receives a tenant's notifications as HTTP
// POSTs. Events and Resources filter them (see WebhookFilter).
type Webhook struct {
	ID             string    `json:"id"`
	Tenant         string    `json:"tenantId"`
	URL            string    `json:"url"`
	Description    string    `json:"description,omitempty"`
	Events         []string  `json:"events,omitempty"`
	Resources      []string  `json:"resources,omitempty"`
	Secret         string    `json:"secret"`
	Disabled       bool      `json:"disabled"`
	DisabledReason string    `json:"disabledReason,omitempty"`
	DisabledAt     time.Time `json:"disabledAt,omitzero"`
	CreatedAt      time.Time `json:"createdAt"`
	UpdatedAt      time.Time `json:"updatedAt"`
}

// DeliveryStatus is where a delivery stands.
type DeliveryStatus string

// Delivery states.
const (
	DeliveryPending   DeliveryStatus = "pending"
	DeliveryDelivered DeliveryStatus = "delivered"
	DeliveryFailed    DeliveryStatus = "failed"
)

// Delivery is one notification on its way to one endpoint. Body is the
// exact request body, fixed when the notification is accepted, so every
// attempt sends the same bytes under the same ID.
type Delivery struct {
	ID             string          `json:"id"`
	Webhook        string          `json:"webhookId"`
	Event          string          `json:"event"`
	Body           json.RawMessage `json:"body"`
	Status         DeliveryStatus  `json:"status"`
	Attempts       int             `json:"attempts"`
	CreatedAt      time.Time       `json:"createdAt"`
	NextAttemptAt  time.Time       `json:"nextAttemptAt,omitzero"`
	LastAttemptAt  time.Time       `json:"lastAttemptAt,omitzero"`
	ResponseStatus int             `json:"responseStatus,omitempty"`
	Error          string          `json:"error,omitempty"`
	FinishedAt     time.Time       `json:"finishedAt,omitzero"`
}
