package wire

// AttachmentChunk is the kind of a change that carries one piece of a large
// attachment. The link splits an attachment.add whose Data is too large for
// one mail into chunk changes, each in its own sequenced envelope, followed
// by the attachment change itself with Data empty and Attachment.ChunkRef
// naming the chunks. The receiving link reassembles and verifies the data
// and hands the replay queue the original attachment change with Data
// filled in; chunk changes never reach replay.
const AttachmentChunk ChangeKind = "attachment.chunk"

// Chunk is one piece of a large attachment's content.
type Chunk struct {
	// Ref is the Attachment.ChunkRef of the change the chunk belongs to.
	Ref string `json:"ref"`
	// Index is the piece's position, from 0; Count how many pieces there are.
	Index int `json:"index"`
	Count int `json:"count"`
	// SHA256 is the lowercase hex SHA-256 of Data, checked before the pieces
	// are joined (the whole content is then checked against
	// Attachment.SHA256).
	SHA256 string `json:"sha256"`
	Data   []byte `json:"data"`
}
