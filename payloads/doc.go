// Package payloads holds the wire shapes of notifyhub: the Portos notification
// (compact keys), its sender and payload types, and the subscription request a
// client sends to Subscribe/Unsubscribe. It validates what publishers and clients
// send and knows the event catalogue; it knows nothing about transports or hubs.
package payloads
