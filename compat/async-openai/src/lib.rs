//! The async-openai tests' server: the shared local OpenAI-compatible one.

pub use mock_openai::{Buf, MockOpenAi, Served};
