//! A factory a test plays itself, request by request, with its own token: to make exactly the
//! claims and fenced writes a test needs (a stale epoch, a retry under a request id).

use serde_json::Value;

use super::{Coordinator, call, enrollment_token};

/// A factory the test plays itself, with its own token.
pub struct FakeFactory {
    pub token: String,
}

impl FakeFactory {
    pub fn enroll(coord: &Coordinator) -> Self {
        let body = serde_json::json!({"name": "fake", "os": "linux", "arch": "x86_64", "slots": 4});
        let (status, v) = call(
            "POST",
            &format!("{}/v1/factories/enroll", coord.url),
            Some(&enrollment_token(coord)),
            Some(&body.to_string()),
        );
        assert_eq!(status, 200, "{v}");
        FakeFactory {
            token: v["token"].as_str().unwrap().to_string(),
        }
    }

    pub fn call(&self, coord: &Coordinator, path: &str, body: Value) -> (u16, Value) {
        call(
            "POST",
            &format!("{}{path}", coord.url),
            Some(&self.token),
            Some(&body.to_string()),
        )
    }

    /// Claims the one queued job: `(id, epoch)`.
    pub fn claim(&self, coord: &Coordinator) -> (String, u64) {
        let (status, v) = self.call(
            coord,
            "/v1/claims",
            serde_json::json!({"max_jobs": 1, "wait_ms": 5000}),
        );
        assert_eq!(status, 200, "{v}");
        let job = &v["jobs"][0];
        (
            job["job_id"].as_str().unwrap().to_string(),
            job["epoch"].as_u64().unwrap(),
        )
    }

    pub fn write(
        &self,
        coord: &Coordinator,
        id: &str,
        what: &str,
        epoch: u64,
        body: Value,
    ) -> (u16, Value) {
        let request_id = format!("{what}-{id}-{epoch}-{}", body.to_string().len());
        self.write_as(coord, id, what, epoch, &request_id, body)
    }

    /// A fenced write with the request id given (a retry sends the same one).
    pub fn write_as(
        &self,
        coord: &Coordinator,
        id: &str,
        what: &str,
        epoch: u64,
        request_id: &str,
        body: Value,
    ) -> (u16, Value) {
        let mut body = body;
        body["epoch"] = serde_json::json!(epoch);
        body["request_id"] = serde_json::json!(request_id);
        self.call(coord, &format!("/v1/jobs/{id}/{what}"), body)
    }
}
