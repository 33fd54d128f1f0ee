"""HotpotQA: multi-hop questions answered with KnowledgeQuery/ParagraphRetrieve/QA; EM and F1."""
