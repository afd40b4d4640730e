package payloads

import "fmt"

// Action is what happened to a resource. Its numeric value is what travels in a
// ResourceChangedPayload ("a": 1|2|3); its name is what clients use in
// subscription requests ("created", "updated", "deleted").
type Action uint8

// The actions of portos.resources.changed.
const (
	ActionCreated Action = 1
	ActionUpdated Action = 2
	ActionDeleted Action = 3
)

// MaxAction is the highest valid Action; useful for sizing per-action tables.
const MaxAction = ActionDeleted

var actionNames = [...]string{ActionCreated: "created", ActionUpdated: "updated", ActionDeleted: "deleted"}

// String returns the action's name as clients write it.
func (a Action) String() string {
	if a.Valid() {
		return actionNames[a]
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// Valid reports whether a is one of the known actions.
func (a Action) Valid() bool { return a >= ActionCreated && a <= MaxAction }

// ParseAction maps an action name ("created", "updated", "deleted") to its Action.
func ParseAction(name string) (Action, error) {
	for a := ActionCreated; a <= MaxAction; a++ {
		if actionNames[a] == name {
			return a, nil
		}
	}
	return 0, fmt.Errorf("unknown action %q (want created, updated or deleted)", name)
}
