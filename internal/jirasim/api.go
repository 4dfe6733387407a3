package jirasim

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// UserSpec describes a user for CreateUser and seed files.
type UserSpec struct {
	Name        string   `json:"name" yaml:"name"`
	Password    string   `json:"password" yaml:"password"`
	DisplayName string   `json:"displayName" yaml:"displayName"`
	Email       string   `json:"emailAddress" yaml:"emailAddress"`
	Groups      []string `json:"groups" yaml:"groups"` // default jira-software-users
}

// ProjectSpec describes a project for CreateProject and seed files.
type ProjectSpec struct {
	Key         string `json:"key" yaml:"key"`
	Name        string `json:"name" yaml:"name"`
	Lead        string `json:"lead" yaml:"lead"` // default admin; joins the Administrators role
	TypeKey     string `json:"projectTypeKey" yaml:"projectTypeKey"`
	Description string `json:"description" yaml:"description"`
	Workflow    string `json:"workflow" yaml:"workflow"` // default "jirasim default workflow"
	// Roles adds members to project roles (Users, Developers,
	// Administrators): "alice" for a user, "group:name" for a group.
	Roles map[string][]string `json:"roles" yaml:"roles"`
}

// FieldSpec describes a custom field. Type is one of textfield, textarea,
// float, select, multiselect, datepicker, datetime, userpicker, labels (or
// the full com.atlassian.jira.plugin.system.customfieldtypes:* key).
type FieldSpec struct {
	Name        string   `json:"name" yaml:"name"`
	Type        string   `json:"type" yaml:"type"`
	Description string   `json:"description" yaml:"description"`
	Options     []string `json:"options" yaml:"options"` // for select and multiselect
}

// Workflow is a configurable workflow. Statuses are named from Jira's
// catalogue: Open, In Progress, Reopened, Resolved, Closed, To Do, Done, In Review.
type Workflow struct {
	Name        string       `json:"name" yaml:"name"`
	Initial     string       `json:"initial" yaml:"initial"`
	Transitions []Transition `json:"transitions" yaml:"transitions"`
}

// Transition goes From any of the named statuses (none: a global
// transition, available from every other status) To one status.
type Transition struct {
	ID   string   `json:"id" yaml:"id"`
	Name string   `json:"name" yaml:"name"`
	From []string `json:"from" yaml:"from"`
	To   string   `json:"to" yaml:"to"`
}

const customTypePrefix = "com.atlassian.jira.plugin.system.customfieldtypes:"

var fieldTypes = map[string]bool{"textfield": true, "textarea": true, "float": true, "select": true, "multiselect": true,
	"datepicker": true, "datetime": true, "userpicker": true, "labels": true}

var projectKeyRE = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,9}$`)

// CreateUser adds a user, as POST /rest/api/2/user does.
func (s *Server) CreateUser(u UserSpec) error {
	defer s.lockForChange()()
	return asGoError(s.createUser(u))
}

func (s *Server) createUser(in UserSpec) error {
	if in.Name == "" {
		return errField(400, "username", "You must specify a username.")
	}
	if s.lookupUser(in.Name) != nil {
		return errField(400, "username", "A user with that username already exists.")
	}
	groups := in.Groups
	if len(groups) == 0 {
		groups = []string{"jira-software-users"}
	}
	dn := in.DisplayName
	if dn == "" {
		dn = in.Name
	}
	email := in.Email
	if email == "" {
		email = in.Name + "@example.com"
	}
	pw := in.Password
	if pw == "" {
		pw = randomToken()
	}
	s.st.Users[strings.ToLower(in.Name)] = &user{Name: in.Name, Key: fmt.Sprintf("JIRAUSER%d", s.st.nextID("user")),
		DisplayName: dn, Email: email, Password: pw, Active: true, Groups: slices.Clone(groups)}
	return nil
}

// CreateToken creates a personal access token for a user and returns it.
func (s *Server) CreateToken(userName string) (string, error) {
	defer s.lockForChange()()
	if s.lookupUser(userName) == nil {
		return "", fmt.Errorf("create token: no user %q", userName)
	}
	raw, _ := s.newToken(userName, "jirasim", 0)
	return raw, nil
}

// SetPassword changes a user's password (and clears failed logins), as an
// administrator would after a credentials change.
func (s *Server) SetPassword(userName, password string) error {
	defer s.lockForChange()()
	u := s.lookupUser(userName)
	if u == nil {
		return fmt.Errorf("set password: no user %q", userName)
	}
	u.Password, u.Failures, u.Captcha = password, 0, false
	return nil
}

// SetActive activates or deactivates a user; inactive users cannot log in.
func (s *Server) SetActive(userName string, active bool) error {
	defer s.lockForChange()()
	u := s.lookupUser(userName)
	if u == nil {
		return fmt.Errorf("set active: no user %q", userName)
	}
	u.Active = active
	return nil
}

// ResetCaptcha clears a user's failed-login count and CAPTCHA requirement,
// as an administrator does in Jira's user management.
func (s *Server) ResetCaptcha(userName string) error {
	defer s.lockForChange()()
	u := s.lookupUser(userName)
	if u == nil {
		return fmt.Errorf("reset captcha: no user %q", userName)
	}
	u.Failures, u.Captcha = 0, false
	return nil
}

// CreateProject adds a project with Jira's default permission scheme and
// the default (or named) workflow.
func (s *Server) CreateProject(p ProjectSpec) error {
	defer s.lockForChange()()
	_, err := s.createProject(p)
	return asGoError(err)
}

func (s *Server) createProject(in ProjectSpec) (*project, error) {
	ae := &apiError{status: 400, fields: map[string]string{}}
	if !projectKeyRE.MatchString(in.Key) {
		ae.fields["projectKey"] = "Project keys must start with an uppercase letter, followed by one or more uppercase alphanumeric characters."
	} else if p := s.st.Projects[in.Key]; p != nil {
		ae.fields["projectKey"] = fmt.Sprintf("Project '%s' uses this project key.", p.Name)
	}
	if in.Name == "" {
		ae.fields["projectName"] = "You must specify a valid project name."
	}
	for _, p := range s.st.Projects {
		if strings.EqualFold(p.Name, in.Name) {
			ae.fields["projectName"] = "A project with that name already exists."
		}
	}
	lead := in.Lead
	if lead == "" {
		lead = "admin"
	}
	if s.lookupUser(lead) == nil {
		ae.fields["projectLead"] = "The project lead specified does not exist."
	}
	wf := in.Workflow
	if wf == "" {
		wf = defaultWorkflow().Name
	}
	if s.st.Workflows[wf] == nil {
		ae.fields["workflow"] = "No workflow named '" + wf + "'."
	}
	if len(ae.fields) > 0 {
		return nil, ae
	}
	tk := in.TypeKey
	if tk == "" {
		tk = "software"
	}
	p := &project{ID: s.st.nextID("project"), Key: in.Key, Name: in.Name, Lead: s.lookupUser(lead).Name, TypeKey: tk,
		Desc: in.Description, Workflow: wf, Perms: defaultPerms(),
		Roles: map[string][]string{
			"Administrators": {"user:" + s.lookupUser(lead).Name, "group:jira-administrators"},
			"Developers":     {},
			"Users":          {"group:jira-software-users"},
		}}
	for role, members := range in.Roles {
		if _, ok := roleIDs[role]; !ok {
			return nil, errMsg(400, "No project role named '"+role+"'.")
		}
		for _, m := range members {
			ref := memberRef(m)
			if name, isUser := strings.CutPrefix(ref, "user:"); isUser {
				u := s.lookupUser(name)
				if u == nil {
					return nil, errMsg(400, "We can't find '"+name+"' in any accessible user directory.")
				}
				ref = "user:" + u.Name
			}
			p.Roles[role] = append(p.Roles[role], ref)
		}
	}
	s.st.Projects[p.Key] = p
	return p, nil
}

func memberRef(m string) string {
	if strings.HasPrefix(m, "group:") || strings.HasPrefix(m, "user:") {
		return m
	}
	return "user:" + m
}

// AddRoleMember puts a user ("alice") or a group ("group:devs") into a project role.
func (s *Server) AddRoleMember(projectKey, role, member string) error {
	defer s.lockForChange()()
	p := s.st.Projects[projectKey]
	if p == nil {
		return fmt.Errorf("add role member: no project %q", projectKey)
	}
	if _, ok := roleIDs[role]; !ok {
		return fmt.Errorf("add role member: no role %q (Users, Developers, Administrators)", role)
	}
	ref := memberRef(member)
	if name, isUser := strings.CutPrefix(ref, "user:"); isUser {
		u := s.lookupUser(name)
		if u == nil {
			return fmt.Errorf("add role member: no user %q", name)
		}
		ref = "user:" + u.Name
	}
	if !slices.Contains(p.Roles[role], ref) {
		p.Roles[role] = append(p.Roles[role], ref)
	}
	return nil
}

// SetPermission replaces the holders of one permission in a project's
// scheme. Holders: "loggedin", "role:Developers", "group:name", "user:name",
// "reporter", "assignee"; none revokes the permission from everyone.
func (s *Server) SetPermission(projectKey, perm string, holders ...string) error {
	defer s.lockForChange()()
	p := s.st.Projects[projectKey]
	if p == nil {
		return fmt.Errorf("set permission: no project %q", projectKey)
	}
	if _, ok := permissionNames[perm]; !ok {
		return fmt.Errorf("set permission: unknown permission %q", perm)
	}
	p.Perms[perm] = slices.Clone(holders)
	return nil
}

// SetScreen limits the fields on a project's create and edit screens to the
// given field ids (system ids such as "summary" or "customfield_10000");
// with no ids every field is on the screens again. summary, issuetype,
// project and parent always stay settable on create.
func (s *Server) SetScreen(projectKey string, fieldIDs ...string) error {
	defer s.lockForChange()()
	p := s.st.Projects[projectKey]
	if p == nil {
		return fmt.Errorf("set screen: no project %q", projectKey)
	}
	p.Screen = slices.Clone(fieldIDs)
	return nil
}

// CreateField adds a custom field and returns its id ("customfield_10000").
func (s *Server) CreateField(f FieldSpec) (string, error) {
	defer s.lockForChange()()
	cf, err := s.createField(f)
	if err != nil {
		return "", asGoError(err)
	}
	return cf.ID, nil
}

func (s *Server) createField(in FieldSpec) (*field, error) {
	t := strings.TrimPrefix(in.Type, customTypePrefix)
	if !fieldTypes[t] {
		return nil, errField(400, "type", "The custom field type '"+in.Type+"' is not valid.")
	}
	if in.Name == "" {
		return nil, errField(400, "name", "You must specify a name for the custom field.")
	}
	f := &field{ID: fmt.Sprintf("customfield_%d", s.st.nextID("field")), Name: in.Name, Desc: in.Description, Type: t}
	for _, o := range in.Options {
		f.Options = append(f.Options, option{ID: idStr(s.st.nextID("option")), Value: o})
	}
	s.st.Fields[f.ID] = f
	return f, nil
}

// AddWorkflow adds (or replaces) a workflow that projects can use.
func (s *Server) AddWorkflow(w Workflow) error {
	defer s.lockForChange()()
	return s.addWorkflow(w)
}

func (s *Server) addWorkflow(w Workflow) error {
	sid := func(name string) (string, error) {
		for _, st := range statuses {
			if strings.EqualFold(st.Name, name) || st.ID == name {
				return st.ID, nil
			}
		}
		return "", fmt.Errorf("add workflow %q: unknown status %q", w.Name, name)
	}
	if w.Name == "" {
		return fmt.Errorf("add workflow: name is empty")
	}
	wf := &workflow{Name: w.Name}
	var err error
	if wf.Initial, err = sid(w.Initial); err != nil {
		return err
	}
	seen := map[string]bool{wf.Initial: true}
	wf.Statuses = append(wf.Statuses, wf.Initial)
	for i, t := range w.Transitions {
		to, err := sid(t.To)
		if err != nil {
			return err
		}
		tr := transition{ID: t.ID, Name: t.Name, To: to}
		if tr.ID == "" {
			tr.ID = fmt.Sprintf("%d", (i+1)*10+1)
		}
		for _, f := range t.From {
			id, err := sid(f)
			if err != nil {
				return err
			}
			tr.From = append(tr.From, id)
		}
		for _, id := range append([]string{to}, tr.From...) {
			if !seen[id] {
				seen[id] = true
				wf.Statuses = append(wf.Statuses, id)
			}
		}
		wf.Transitions = append(wf.Transitions, tr)
	}
	s.st.Workflows[wf.Name] = wf
	return nil
}

// SetProjectWorkflow switches a project to a workflow added with AddWorkflow.
func (s *Server) SetProjectWorkflow(projectKey, workflowName string) error {
	defer s.lockForChange()()
	p := s.st.Projects[projectKey]
	if p == nil {
		return fmt.Errorf("set workflow: no project %q", projectKey)
	}
	if s.st.Workflows[workflowName] == nil {
		return fmt.Errorf("set workflow: no workflow %q", workflowName)
	}
	p.Workflow = workflowName
	return nil
}

// asGoError turns an API error into a plain error for the Go API.
func asGoError(err error) error {
	if err == nil {
		return nil
	}
	if ae, ok := err.(*apiError); ok {
		var parts []string
		parts = append(parts, ae.messages...)
		for _, k := range sortedKeys(ae.fields) {
			parts = append(parts, k+": "+ae.fields[k])
		}
		return fmt.Errorf("jirasim: %s", strings.Join(parts, "; "))
	}
	return err
}

func (s *Server) projectByID(id string) *project {
	for _, p := range s.st.Projects {
		if idStr(p.ID) == id || p.Key == strings.ToUpper(id) {
			return p
		}
	}
	return nil
}

// Seed preloads a Server: users, custom fields, workflows and projects, in
// that order. cmd/jirasim reads it from -seed (YAML or JSON).
type Seed struct {
	Users     []UserSpec    `json:"users" yaml:"users"`
	Fields    []FieldSpec   `json:"fields" yaml:"fields"`
	Workflows []Workflow    `json:"workflows" yaml:"workflows"`
	Projects  []ProjectSpec `json:"projects" yaml:"projects"`
}

// ApplySeed creates everything in the seed, skipping users and projects
// that already exist (so a seed can be applied on top of a -state file).
func (s *Server) ApplySeed(sd Seed) error {
	defer s.lockForChange()()
	for _, u := range sd.Users {
		if s.lookupUser(u.Name) != nil {
			continue
		}
		if err := s.createUser(u); err != nil {
			return fmt.Errorf("seed user %q: %w", u.Name, asGoError(err))
		}
	}
	for _, f := range sd.Fields {
		exists := false
		for _, cf := range s.st.Fields {
			exists = exists || strings.EqualFold(cf.Name, f.Name)
		}
		if exists {
			continue
		}
		if _, err := s.createField(f); err != nil {
			return fmt.Errorf("seed field %q: %w", f.Name, asGoError(err))
		}
	}
	for _, w := range sd.Workflows {
		if err := s.addWorkflow(w); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
	}
	for _, p := range sd.Projects {
		if s.st.Projects[p.Key] != nil {
			continue
		}
		if _, err := s.createProject(p); err != nil {
			return fmt.Errorf("seed project %q: %w", p.Key, asGoError(err))
		}
	}
	return nil
}

// FieldID returns the id of the custom field with the given display name.
func (s *Server) FieldID(name string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range sortedKeys(s.st.Fields) {
		if strings.EqualFold(s.st.Fields[id].Name, name) {
			return id, true
		}
	}
	return "", false
}
