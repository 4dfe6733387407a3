package jirasim

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

func (s *Server) routesAttachments() {
	s.route("POST /rest/api/2/issue/{key}/attachments", false, func(c *reqCtx) error {
		tok := strings.ToLower(c.r.Header.Get("X-Atlassian-Token"))
		if tok != "no-check" && tok != "nocheck" {
			return &apiError{status: 403, plain: "XSRF check failed"}
		}
		is, err := s.issueFor(c, permCreateAttach)
		if err != nil {
			return err
		}
		limit := s.opts.MaxAttachmentSize
		c.r.Body = http.MaxBytesReader(c.w, c.r.Body, limit+1<<20)
		mr, err := c.r.MultipartReader()
		if err != nil {
			return errMsg(400, "Attachment upload needs a multipart/form-data body with a 'file' part.")
		}
		var added []*attachment
		for {
			part, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				return tooLargeOr(err, limit)
			}
			if part.FormName() != "file" {
				continue
			}
			b, err := io.ReadAll(io.LimitReader(part, limit+1))
			if err != nil {
				return tooLargeOr(err, limit)
			}
			if int64(len(b)) > limit {
				return tooLarge(part.FileName(), limit)
			}
			mt := part.Header.Get("Content-Type")
			if mt == "" || mt == "application/octet-stream" {
				if byExt := mime.TypeByExtension(filepath.Ext(part.FileName())); byExt != "" {
					mt = byExt
				} else if mt == "" {
					mt = "application/octet-stream"
				}
			}
			added = append(added, &attachment{Issue: is.ID, Filename: part.FileName(), Author: c.user.Name,
				Created: s.now(), MimeType: mt, Content: b})
		}
		if len(added) == 0 {
			return errMsg(400, "No attachments were found in the request.")
		}
		out := []any{}
		var items []historyItem
		for _, a := range added {
			a.ID = s.st.nextID("attachment")
			s.st.Attachments[a.ID] = a
			out = append(out, s.attachmentJSON(c, a))
			items = append(items, historyItem{Field: "Attachment", FieldType: "jira", To: ptr(idStr(a.ID)), ToString: ptr(a.Filename)})
		}
		h := s.addHistory(c, is, items, nil)
		s.fire(c, is, "jira:issue_updated", "issue_updated", h, nil)
		c.dirty = true
		writeJSON(c.w, 200, out)
		return nil
	})
	s.route("GET /rest/api/2/attachment/{id}", false, func(c *reqCtx) error {
		a, _, err := s.attachmentFor(c)
		if err != nil {
			return err
		}
		writeJSON(c.w, 200, s.attachmentJSON(c, a))
		return nil
	})
	s.route("DELETE /rest/api/2/attachment/{id}", false, func(c *reqCtx) error {
		a, is, err := s.attachmentFor(c)
		if err != nil {
			return err
		}
		p := s.st.Projects[is.Project]
		if !s.hasPerm(c.user, p, permDelAllAttach, is) && !(a.Author == c.user.Name && s.hasPerm(c.user, p, permDelOwnAttach, is)) {
			return errMsg(403, "You do not have permission to delete attachment with id '"+idStr(a.ID)+"'.")
		}
		delete(s.st.Attachments, a.ID)
		h := s.addHistory(c, is, []historyItem{{Field: "Attachment", FieldType: "jira", From: ptr(idStr(a.ID)), FromString: ptr(a.Filename)}}, nil)
		s.fire(c, is, "jira:issue_updated", "issue_updated", h, nil)
		c.dirty = true
		c.w.WriteHeader(204)
		return nil
	})
	s.route("GET /rest/api/2/attachment/meta", false, func(c *reqCtx) error {
		writeJSON(c.w, 200, map[string]any{"enabled": true, "uploadLimit": s.opts.MaxAttachmentSize})
		return nil
	})
	download := func(c *reqCtx) error {
		a, _, err := s.attachmentFor(c)
		if err != nil {
			return err
		}
		c.w.Header().Set("Content-Type", a.MimeType)
		c.w.Header().Set("Content-Length", strconv.Itoa(len(a.Content)))
		c.w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename*=UTF-8''%s", a.Filename))
		c.w.WriteHeader(200)
		_, _ = c.w.Write(a.Content)
		return nil
	}
	s.route("GET /secure/attachment/{id}/{name}", false, download)
	s.route("GET /secure/attachment/{id}/{$}", false, download)
}

func tooLarge(name string, limit int64) error {
	return errMsg(http.StatusRequestEntityTooLarge, fmt.Sprintf("The file '%s' is too large to attach. Maximum size is %d bytes.", name, limit))
}

func tooLargeOr(err error, limit int64) error {
	var mbe *http.MaxBytesError
	if ok := asErr(err, &mbe); ok {
		return tooLarge("upload", limit)
	}
	return errMsg(400, "Could not read the attachment: "+err.Error())
}

func (s *Server) attachmentFor(c *reqCtx) (*attachment, *issue, error) {
	id, _ := strconv.ParseInt(c.r.PathValue("id"), 10, 64)
	a := s.st.Attachments[id]
	if a == nil {
		return nil, nil, errMsg(404, "The attachment with id '"+c.r.PathValue("id")+"' does not exist")
	}
	is := s.st.Issues[a.Issue]
	if !s.hasPerm(c.user, s.st.Projects[is.Project], permBrowse, is) {
		return nil, nil, errMsg(403, "You do not have permission to view attachment with id '"+c.r.PathValue("id")+"'.")
	}
	return a, is, nil
}

func (s *Server) routesRelations() {
	// Watchers.
	s.route("GET /rest/api/2/issue/{key}/watchers", false, func(c *reqCtx) error {
		is, err := s.issueFor(c, "")
		if err != nil {
			return err
		}
		ws := []any{}
		for _, w := range is.Watchers {
			if u := s.lookupUser(w); u != nil {
				ws = append(ws, s.userBean(c.base, u))
			}
		}
		writeJSON(c.w, 200, map[string]any{"self": s.issueSelf(c.base, is) + "/watchers", "isWatching": slices.Contains(is.Watchers, c.user.Name),
			"watchCount": len(ws), "watchers": ws})
		return nil
	})
	s.route("POST /rest/api/2/issue/{key}/watchers", false, func(c *reqCtx) error {
		is, err := s.issueFor(c, "")
		if err != nil {
			return err
		}
		name := c.user.Name
		b, _ := io.ReadAll(io.LimitReader(c.r.Body, 1<<16))
		if len(strings.TrimSpace(string(b))) > 0 {
			if mt, _, _ := mime.ParseMediaType(c.r.Header.Get("Content-Type")); mt != "application/json" {
				return errMsg(http.StatusUnsupportedMediaType, "Unsupported Media Type: send Content-Type: application/json")
			}
			if err := json.Unmarshal(b, &name); err != nil {
				return errMsg(400, "Unexpected token; the body must be a JSON string with the username.")
			}
		}
		u, err := s.watcherFor(c, is, name)
		if err != nil {
			return err
		}
		if !s.hasPerm(u, s.st.Projects[is.Project], permBrowse, is) {
			return errMsg(401, "The user \""+u.Name+"\" does not have permission to view this issue. This user will not be added to the watch list.")
		}
		if !slices.Contains(is.Watchers, u.Name) {
			is.Watchers = append(is.Watchers, u.Name)
		}
		c.dirty = true
		c.w.WriteHeader(204)
		return nil
	})
	s.route("DELETE /rest/api/2/issue/{key}/watchers", false, func(c *reqCtx) error {
		is, err := s.issueFor(c, "")
		if err != nil {
			return err
		}
		name := c.r.URL.Query().Get("username")
		if name == "" {
			return errMsg(400, "The username query parameter was not provided")
		}
		u, err := s.watcherFor(c, is, name)
		if err != nil {
			return err
		}
		is.Watchers = slices.DeleteFunc(is.Watchers, func(w string) bool { return w == u.Name })
		c.dirty = true
		c.w.WriteHeader(204)
		return nil
	})

	// Issue links.
	s.route("GET /rest/api/2/issueLinkType", false, func(c *reqCtx) error {
		out := []any{}
		for _, id := range sortedKeys(s.st.LinkTypes) {
			out = append(out, s.linkTypeJSON(c.base, s.st.LinkTypes[id]))
		}
		writeJSON(c.w, 200, map[string]any{"issueLinkTypes": out})
		return nil
	})
	s.route("GET /rest/api/2/issueLinkType/{id}", false, func(c *reqCtx) error {
		lt := s.st.LinkTypes[c.r.PathValue("id")]
		if lt == nil {
			return errMsg(404, "No issue link type with id '"+c.r.PathValue("id")+"' found.")
		}
		writeJSON(c.w, 200, s.linkTypeJSON(c.base, lt))
		return nil
	})
	s.route("POST /rest/api/2/issueLinkType", false, func(c *reqCtx) error {
		if !c.user.isSysadmin() {
			return errMsg(403, "You do not have the permission to create issue link types.")
		}
		var in struct{ Name, Inward, Outward string }
		if err := decode(c.r, &in); err != nil {
			return err
		}
		if in.Name == "" || in.Inward == "" || in.Outward == "" {
			return errMsg(400, "Issue link type name, inward and outward descriptions are required.")
		}
		for _, lt := range s.st.LinkTypes {
			if strings.EqualFold(lt.Name, in.Name) {
				return errMsg(400, "The issue link type with name '"+in.Name+"' already exists.")
			}
		}
		lt := &linkType{ID: idStr(s.st.nextID("linktype")), Name: in.Name, Inward: in.Inward, Outward: in.Outward}
		s.st.LinkTypes[lt.ID] = lt
		c.dirty = true
		writeJSON(c.w, 201, s.linkTypeJSON(c.base, lt))
		return nil
	})
	s.route("POST /rest/api/2/issueLink", false, func(c *reqCtx) error {
		var in struct {
			Type         struct{ ID, Name string } `json:"type"`
			InwardIssue  struct{ ID, Key string }  `json:"inwardIssue"`
			OutwardIssue struct{ ID, Key string }  `json:"outwardIssue"`
			Comment      *commentInput             `json:"comment"`
		}
		if err := decode(c.r, &in); err != nil {
			return err
		}
		var lt *linkType
		for _, x := range s.st.LinkTypes {
			if (in.Type.ID != "" && x.ID == in.Type.ID) || (in.Type.ID == "" && strings.EqualFold(x.Name, in.Type.Name)) {
				lt = x
			}
		}
		if lt == nil {
			return errMsg(404, "No issue link type with name '"+in.Type.Name+"' found.")
		}
		ref := func(r struct{ ID, Key string }) *issue {
			if r.Key != "" {
				return s.findIssue(r.Key)
			}
			if r.ID != "" {
				return s.findIssue(r.ID)
			}
			return nil
		}
		inw, outw := ref(in.InwardIssue), ref(in.OutwardIssue)
		if inw == nil || outw == nil {
			return errMsg(404, "Issue Does Not Exist")
		}
		for _, is := range []*issue{inw, outw} {
			if !s.hasPerm(c.user, s.st.Projects[is.Project], permBrowse, is) {
				return errNoIssue()
			}
		}
		// Jira checks Link Issues on the inward issue (the "from" side of the UI).
		if !s.hasPerm(c.user, s.st.Projects[inw.Project], permLink, inw) {
			return errMsg(403, permMessage(permLink))
		}
		for _, l := range s.st.Links {
			if l.Type == lt.ID && l.Inward == inw.ID && l.Outward == outw.ID {
				c.w.Header().Set("Location", c.base+"/rest/api/2/issueLink/"+idStr(l.ID))
				writeJSON(c.w, 201, nil)
				return nil
			}
		}
		l := &issueLink{ID: s.st.nextID("link"), Type: lt.ID, Inward: inw.ID, Outward: outw.ID}
		s.st.Links[l.ID] = l
		// Like Jira, both issues get a history entry naming the other side.
		h1 := s.addHistory(c, inw, []historyItem{{Field: "Link", FieldType: "jira", To: ptr(outw.Key),
			ToString: ptr("This issue " + lt.Outward + " " + outw.Key)}}, nil)
		h2 := s.addHistory(c, outw, []historyItem{{Field: "Link", FieldType: "jira", To: ptr(inw.Key),
			ToString: ptr("This issue " + lt.Inward + " " + inw.Key)}}, nil)
		s.fire(c, inw, "jira:issue_updated", "issue_generic", h1, nil)
		s.fire(c, outw, "jira:issue_updated", "issue_generic", h2, nil)
		if in.Comment != nil && in.Comment.Body != nil && *in.Comment.Body != "" {
			s.addComment(c, inw, *in.Comment.Body, in.Comment.Visibility, nil)
		}
		c.dirty = true
		c.w.Header().Set("Location", c.base+"/rest/api/2/issueLink/"+idStr(l.ID))
		writeJSON(c.w, 201, nil)
		return nil
	})
	s.route("GET /rest/api/2/issueLink/{id}", false, func(c *reqCtx) error {
		l, err := s.linkFor(c)
		if err != nil {
			return err
		}
		lt := s.st.LinkTypes[l.Type]
		writeJSON(c.w, 200, map[string]any{"id": idStr(l.ID), "self": c.base + "/rest/api/2/issueLink/" + idStr(l.ID),
			"type": s.linkTypeJSON(c.base, lt), "inwardIssue": s.issueRef(c.base, s.st.Issues[l.Inward]),
			"outwardIssue": s.issueRef(c.base, s.st.Issues[l.Outward])})
		return nil
	})
	s.route("DELETE /rest/api/2/issueLink/{id}", false, func(c *reqCtx) error {
		l, err := s.linkFor(c)
		if err != nil {
			return err
		}
		inw, outw := s.st.Issues[l.Inward], s.st.Issues[l.Outward]
		if !s.hasPerm(c.user, s.st.Projects[inw.Project], permLink, inw) {
			return errMsg(403, permMessage(permLink))
		}
		lt := s.st.LinkTypes[l.Type]
		delete(s.st.Links, l.ID)
		h1 := s.addHistory(c, inw, []historyItem{{Field: "Link", FieldType: "jira", From: ptr(outw.Key),
			FromString: ptr("This issue " + lt.Outward + " " + outw.Key)}}, nil)
		h2 := s.addHistory(c, outw, []historyItem{{Field: "Link", FieldType: "jira", From: ptr(inw.Key),
			FromString: ptr("This issue " + lt.Inward + " " + inw.Key)}}, nil)
		s.fire(c, inw, "jira:issue_updated", "issue_generic", h1, nil)
		s.fire(c, outw, "jira:issue_updated", "issue_generic", h2, nil)
		c.dirty = true
		c.w.WriteHeader(204)
		return nil
	})

	// Remote links.
	s.route("GET /rest/api/2/issue/{key}/remotelink", false, func(c *reqCtx) error {
		is, err := s.issueFor(c, "")
		if err != nil {
			return err
		}
		g := c.r.URL.Query().Get("globalId")
		out := []any{}
		for _, rl := range is.RemoteLinks {
			if g == "" || rl.GlobalID == g {
				out = append(out, s.remoteLinkJSON(c, is, rl))
			}
		}
		writeJSON(c.w, 200, out)
		return nil
	})
	s.route("GET /rest/api/2/issue/{key}/remotelink/{id}", false, func(c *reqCtx) error {
		is, err := s.issueFor(c, "")
		if err != nil {
			return err
		}
		for _, rl := range is.RemoteLinks {
			if idStr(rl.ID) == c.r.PathValue("id") {
				writeJSON(c.w, 200, s.remoteLinkJSON(c, is, rl))
				return nil
			}
		}
		return errMsg(404, "No remote link with id '"+c.r.PathValue("id")+"' exists on this issue.")
	})
	upsert := func(c *reqCtx) error {
		is, err := s.issueFor(c, permLink)
		if err != nil {
			return err
		}
		var in remoteLink
		if err := decode(c.r, &in); err != nil {
			return err
		}
		var obj struct{ URL, Title string }
		_ = json.Unmarshal(in.Object, &obj)
		ae := &apiError{status: 400, fields: map[string]string{}}
		if obj.URL == "" {
			ae.fields["url"] = "'url' is required."
		}
		if obj.Title == "" {
			ae.fields["title"] = "'title' is required."
		}
		if len(ae.fields) > 0 {
			return ae
		}
		var target *remoteLink
		if id := c.r.PathValue("id"); id != "" {
			for _, rl := range is.RemoteLinks {
				if idStr(rl.ID) == id {
					target = rl
				}
			}
			if target == nil {
				return errMsg(404, "No remote link with id '"+id+"' exists on this issue.")
			}
		} else if in.GlobalID != "" {
			for _, rl := range is.RemoteLinks {
				if rl.GlobalID == in.GlobalID {
					target = rl
				}
			}
		}
		status := 200
		if target == nil {
			target = &remoteLink{ID: s.st.nextID("remotelink")}
			is.RemoteLinks = append(is.RemoteLinks, target)
			status = 201
		}
		target.GlobalID, target.Application, target.Relationship, target.Object = in.GlobalID, in.Application, in.Relationship, in.Object
		c.dirty = true
		if c.r.Method == http.MethodPut {
			c.w.WriteHeader(204)
			return nil
		}
		writeJSON(c.w, status, map[string]any{"id": target.ID, "self": s.issueSelf(c.base, is) + "/remotelink/" + idStr(target.ID)})
		return nil
	}
	s.route("POST /rest/api/2/issue/{key}/remotelink", false, upsert)
	s.route("PUT /rest/api/2/issue/{key}/remotelink/{id}", false, upsert)
	delRemote := func(c *reqCtx) error {
		is, err := s.issueFor(c, permLink)
		if err != nil {
			return err
		}
		id, g := c.r.PathValue("id"), c.r.URL.Query().Get("globalId")
		n := len(is.RemoteLinks)
		is.RemoteLinks = slices.DeleteFunc(is.RemoteLinks, func(rl *remoteLink) bool {
			return (id != "" && idStr(rl.ID) == id) || (id == "" && g != "" && rl.GlobalID == g)
		})
		if len(is.RemoteLinks) == n {
			return errMsg(404, "No remote link exists on this issue for the given id or globalId.")
		}
		c.dirty = true
		c.w.WriteHeader(204)
		return nil
	}
	s.route("DELETE /rest/api/2/issue/{key}/remotelink/{id}", false, delRemote)
	s.route("DELETE /rest/api/2/issue/{key}/remotelink", false, delRemote)
}

func (s *Server) linkFor(c *reqCtx) (*issueLink, error) {
	id, _ := strconv.ParseInt(c.r.PathValue("id"), 10, 64)
	l := s.st.Links[id]
	if l == nil {
		return nil, errMsg(404, "No issue link with id '"+c.r.PathValue("id")+"' exists.")
	}
	for _, is := range []*issue{s.st.Issues[l.Inward], s.st.Issues[l.Outward]} {
		if is == nil || !s.hasPerm(c.user, s.st.Projects[is.Project], permBrowse, is) {
			return nil, errMsg(404, "No issue link with id '"+c.r.PathValue("id")+"' exists.")
		}
	}
	return l, nil
}

func (s *Server) remoteLinkJSON(c *reqCtx, is *issue, rl *remoteLink) map[string]any {
	m := map[string]any{"id": rl.ID, "self": s.issueSelf(c.base, is) + "/remotelink/" + idStr(rl.ID), "object": rl.Object}
	if rl.GlobalID != "" {
		m["globalId"] = rl.GlobalID
	}
	if len(rl.Application) > 0 {
		m["application"] = rl.Application
	} else {
		m["application"] = map[string]any{}
	}
	if rl.Relationship != "" {
		m["relationship"] = rl.Relationship
	}
	return m
}

// watcherFor is the user name a request adds to or removes from the
// watchers of is: someone who exists, and either the requester or someone
// the requester may manage watchers for.
func (s *Server) watcherFor(c *reqCtx, is *issue, name string) (*user, error) {
	u := s.lookupUser(name)
	if u == nil {
		return nil, errMsg(404, "The user \""+name+"\" does not exist")
	}
	if u.Name != c.user.Name {
		if err := s.need(c, is, permManageWatchers); err != nil {
			return nil, err
		}
	}
	return u, nil
}
