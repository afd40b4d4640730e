// Package notify is the hub core: a published notification goes to its
// tenant, is matched against the subscription index, encoded once per wire
// protocol, and handed to the matching subscribers' queues.
//
// Publishing goes through a Backplane so that one node (the in-memory
// backplane) and many nodes (Redis) run the same delivery path: a node
// delivers what its backplane hands it, including its own publishes.
package notify
