package agent

import "slices"

// Permissions checked by the API.
const (
	permMeshRead      = "mesh.read"
	permNodesRead     = "nodes.read"
	permNodesManage   = "nodes.manage"
	permPairingCreate = "pairing.create"
)

// builtinRoles maps each built-in role to its permissions; "*" is all.
var builtinRoles = map[string][]string{
	"admin":    {"*"},
	"operator": {permMeshRead, permNodesRead, permNodesManage, permPairingCreate, "capabilities.read", "capabilities.call", "compat.models.read", "compat.chat.create", "compat.embeddings.create"},
	"viewer":   {permMeshRead, permNodesRead, "capabilities.read"},
	"node":     {permMeshRead, permNodesRead, permPairingCreate},
}

// principal is who makes an API call.
type principal struct {
	// Name is for the record: "local-admin@NODE" for the local credential.
	Name  string
	Roles []string
}

func (p principal) can(perm string) bool {
	for _, r := range p.Roles {
		perms := builtinRoles[r]
		if slices.Contains(perms, "*") || slices.Contains(perms, perm) {
			return true
		}
	}
	return false
}

// mayGrant reports whether p may hand out role (in a pairing ticket): an
// admin grants anything; others only "node" and roles they hold themselves.
func (p principal) mayGrant(role string) bool {
	return role == "node" || slices.Contains(p.Roles, "admin") || slices.Contains(p.Roles, role)
}
