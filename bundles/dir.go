package bundles

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/gatehouse-pdp/gatehouse/adapter"
	"github.com/gatehouse-pdp/gatehouse/pdp"
)

// AgentsDir is the directory of a policy tree that holds one directory per
// agent, named by its agent_id.
const AgentsDir = "agents"

// maxPolicyFiles bounds the files of one policy tree.
const maxPolicyFiles = 10000

// FileError is a problem with one file of a policy tree. Path is relative to
// the tree's root with "/" separators; Err names the field where there is
// one, so Error reads "agents/billing-bot/pii.yaml: rules[0].severity: ...".
type FileError struct {
	Path string
	Err  error
}

// Error returns "path: problem".
func (e *FileError) Error() string { return e.Path + ": " + e.Err.Error() }

// Unwrap returns the problem, e.g. a *pdp.ValidationError.
func (e *FileError) Unwrap() error { return e.Err }

// LoadDir reads a GitOps policy tree; see LoadFS.
func LoadDir(dir, tenantID string) (pdp.TenantPolicies, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return pdp.TenantPolicies{}, fmt.Errorf("policy directory: %w", err)
	}
	if !info.IsDir() {
		return pdp.TenantPolicies{}, fmt.Errorf("policy directory %s: not a directory", dir)
	}
	return LoadFS(os.DirFS(dir), tenantID)
}

// LoadFS reads the policies of one tenant from a tree of JSON and YAML
// policy documents (docs/api.md §A3):
//
//	pii.yaml                      tenant-wide policies, at the top level
//	agents/billing-bot/pii.yaml   policies of agent billing-bot
//
// Each file holds one policy, decoded and validated as the API does; its
// name comes from the document (the file name is irrelevant). A file under
// agents/<id>/ belongs to agent <id> (percent-decoded, so an agent_id
// with "/" or other characters a file name cannot hold is written
// agents/ops%20bot%2Feu/), which must be a valid agent_id, and
// its own agent_id field, if set, must say the same; a top-level file must
// not name an agent. Files must end in .json, .yaml or .yml; names starting
// with "." (such as .git, or a Kubernetes volume's ..data) are ignored,
// and symbolic links are followed. Two policies with the same name at one
// scope are an error, whether enabled or not.
//
// Every problem is reported at once, joined, each a *FileError naming the
// file and, for document problems, the field. The result is sorted by agent
// then name, with Mode enforcement, Version 1 for every policy, and Revision
// the first 8 bytes (big-endian) of the SHA-256 of the policies' JSON, so the
// same tree always loads at the same revision.
func LoadFS(fsys fs.FS, tenantID string) (pdp.TenantPolicies, error) {
	if err := checkTenantID(tenantID); err != nil {
		return pdp.TenantPolicies{}, err
	}
	l := &dirLoader{fsys: fsys, seen: map[scopeName]string{}}
	l.tree()
	if err := errors.Join(l.errs...); err != nil {
		return pdp.TenantPolicies{}, err
	}
	slices.SortFunc(l.policies, func(a, b pdp.Policy) int {
		return strings.Compare(a.AgentID+"\x00"+a.Name, b.AgentID+"\x00"+b.Name)
	})
	canonical, err := json.Marshal(l.policies)
	if err != nil {
		return pdp.TenantPolicies{}, err
	}
	sum := sha256.Sum256(canonical)
	return pdp.TenantPolicies{
		TenantID: tenantID,
		Revision: binary.BigEndian.Uint64(sum[:8]),
		Mode:     pdp.ModeEnforcement,
		Policies: l.policies,
	}, nil
}

// BuildFromDir builds the bundle of the policy tree dir (LoadDir) for
// tenantID, with the manifest revision "sha256:<hex>" of its content
// (WithContentRevision) unless opts set another.
func BuildFromDir(dir, tenantID string, config map[string]any, opts ...Option) (*Built, error) {
	tp, err := LoadDir(dir, tenantID)
	if err != nil {
		return nil, err
	}
	return Build(tp, config, append([]Option{WithContentRevision()}, opts...)...)
}

type scopeName struct{ agent, name string }

// dirLoader walks one policy tree, collecting policies and problems.
type dirLoader struct {
	fsys     fs.FS
	policies []pdp.Policy
	seen     map[scopeName]string // → the file that defined it
	files    int
	errs     []error
}

func (l *dirLoader) fail(p string, err error) {
	l.errs = append(l.errs, &FileError{Path: p, Err: err})
}

// entries lists the visible entries of dir, each with whether it is a
// directory (symbolic links resolved).
func (l *dirLoader) entries(dir string) (names []string, isDir map[string]bool) {
	des, err := fs.ReadDir(l.fsys, dir)
	if err != nil {
		l.fail(dirLabel(dir), err)
		return nil, nil
	}
	isDir = map[string]bool{}
	for _, de := range des {
		name := de.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		p := path.Join(dir, name)
		switch {
		case de.Type()&fs.ModeSymlink != 0:
			info, err := fs.Stat(l.fsys, p)
			if err != nil {
				l.fail(p, fmt.Errorf("broken symbolic link: %w", err))
				continue
			}
			isDir[name] = info.IsDir()
		default:
			isDir[name] = de.IsDir()
		}
		names = append(names, name)
	}
	return names, isDir
}

func dirLabel(dir string) string {
	if dir == "." {
		return "."
	}
	return dir + "/"
}

func (l *dirLoader) tree() {
	names, isDir := l.entries(".")
	for _, name := range names {
		switch {
		case name == AgentsDir && isDir[name]:
			l.agents()
		case isDir[name]:
			l.fail(name+"/", errors.New("unexpected directory: tenant-wide policies go at the top level, agent-scoped ones in agents/<agent_id>/"))
		default:
			l.file(name, "")
		}
	}
}

func (l *dirLoader) agents() {
	names, isDir := l.entries(AgentsDir)
	for _, name := range names {
		dir := AgentsDir + "/" + name
		// The directory is the agent_id, percent-encoded where a file
		// name cannot hold it (agents/ops%20bot%2Feu/ is "ops bot/eu").
		agent, err := url.PathUnescape(name)
		switch {
		case !isDir[name]:
			l.fail(dir, errors.New("unexpected file: agent-scoped policies go in agents/<agent_id>/"))
		case err != nil || !pdp.ValidAgentID(agent):
			l.fail(dir+"/", errors.New("directory name is not a valid agent_id (percent-encoded where needed): "+pdp.AgentIDRule))
		default:
			files, isSub := l.entries(dir)
			for _, name := range files {
				if isSub[name] {
					l.fail(dir+"/"+name+"/", errors.New("unexpected directory: agents/<agent_id>/ holds policy files only"))
					continue
				}
				l.file(dir+"/"+name, agent)
			}
		}
	}
}

// file reads the policy document p, which belongs to agent ("" for the
// tenant-wide scope).
func (l *dirLoader) file(p, agent string) {
	var format adapter.Format
	switch strings.ToLower(path.Ext(p)) {
	case ".json":
		format = adapter.FormatJSON
	case ".yaml", ".yml":
		format = adapter.FormatYAML
	default:
		l.fail(p, errors.New("not a policy file: policy files end in .json, .yaml or .yml"))
		return
	}
	if l.files++; l.files > maxPolicyFiles {
		if l.files == maxPolicyFiles+1 {
			l.fail(p, fmt.Errorf("too many policy files: at most %d", maxPolicyFiles))
		}
		return
	}
	data, err := readLimited(l.fsys, p, adapter.MaxDocumentBytes)
	if err != nil {
		l.fail(p, err)
		return
	}
	doc, err := adapter.Decode(data, format)
	if err != nil {
		l.failDocument(p, err)
		return
	}
	switch {
	case agent == "" && doc.AgentID != nil && *doc.AgentID != "":
		l.fail(p, pdp.Invalid("agent_id", "a top-level file holds a tenant-wide policy; put the policy of agent %q in agents/%s/", *doc.AgentID, *doc.AgentID))
		return
	case agent != "" && doc.AgentID != nil && *doc.AgentID != agent:
		l.fail(p, pdp.Invalid("agent_id", "%q does not match the directory agents/%s/", *doc.AgentID, agent))
		return
	case agent != "":
		doc.AgentID = &agent
	}
	pol, err := doc.Policy()
	if err != nil {
		l.failDocument(p, err)
		return
	}
	pol.Version = 1
	k := scopeName{pol.AgentID, pol.Name}
	if other, dup := l.seen[k]; dup {
		l.fail(p, pdp.Invalid("name", "policy %q is already defined at this scope by %s", pol.Name, other))
		return
	}
	l.seen[k] = p
	l.policies = append(l.policies, pol)
}

// failDocument reports each problem of a document separately, so every line
// names the file and the field.
func (l *dirLoader) failDocument(p string, err error) {
	var ves pdp.ValidationErrors
	if errors.As(err, &ves) {
		for _, ve := range ves {
			l.fail(p, ve)
		}
		return
	}
	l.fail(p, err)
}

// readLimited reads a file of at most limit bytes.
func readLimited(fsys fs.FS, p string, limit int64) ([]byte, error) {
	f, err := fsys.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return data, nil
}
