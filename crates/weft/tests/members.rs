//! People in the API: one's profile fields and photo (size- and type-checked), and the
//! workspace's members, whose roles admins change (never above their own) and who leave or
//! are removed, the last owner staying.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::server::{Backend, Server};

async fn put_photo(server: &Server, token: &str, bytes: Vec<u8>) -> u16 {
    Server::client()
        .put(server.url("/api/v1/me/photo"))
        .bearer_auth(token)
        .body(bytes)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

on_both_backends!(
    a_profile_is_changed_checked_and_has_a_photo,
    |server: Server| async move {
        let server = &server;
        let change = |body: Value| async move {
            server
                .api(Method::PATCH, "/api/v1/me", Some(body.to_string()))
                .await
        };
        let (status, changed) = change(json!({
        "name": "Ann Lee", "phone": "+44 20 7946 0958", "title": "Ops lead", "company": "Acme",
        "company_size": "11-50", "username": "Ann.Lee", "notification_emails": ["ops@example.com"]
    }))
    .await;
        assert_eq!(status, 200, "{changed}");
        let (_, me) = server.api(Method::GET, "/api/v1/me", None).await;
        assert_eq!(me["name"], "Ann Lee");
        assert_eq!(me["profile"]["username"], "ann.lee");
        assert_eq!(me["profile"]["company_size"], "11-50");
        assert_eq!(
            me["profile"]["notification_emails"],
            json!(["ops@example.com"])
        );
        for bad in [
            json!({ "phone": "call me maybe" }),
            json!({ "company_size": "huge" }),
            json!({ "username": "x" }),
            json!({ "notification_emails": ["not an address"] }),
            json!({ "name": "" }),
            json!({ "shoe_size": 9 }),
        ] {
            let (status, refused) = change(bad.clone()).await;
            assert_eq!(status, 400, "{bad}: {refused}");
        }
        // `null` clears a field; a username is one person's.
        let (status, _) = change(json!({ "phone": null })).await;
        assert_eq!(status, 200);
        let other = server.create_user_and_token("bo@example.com", "viewer");
        let (status, taken) = server
            .api_as(
                &other,
                Method::PATCH,
                "/api/v1/me",
                Some(json!({ "username": "ann.lee" }).to_string()),
            )
            .await;
        assert_eq!(status, 409, "{taken}");

        // A photo: an image of at most 512 KiB, served to members with its type.
        let png = [b"\x89PNG\r\n\x1a\n".as_slice(), &[0u8; 100]].concat();
        assert_eq!(put_photo(server, &server.token, png.clone()).await, 204);
        assert_eq!(
            put_photo(server, &server.token, b"<svg onload=alert(1)>".to_vec()).await,
            415
        );
        let mut huge = png.clone();
        huge.resize(600 * 1024, 0);
        assert_eq!(put_photo(server, &server.token, huge).await, 413);
        let (_, me) = server.api(Method::GET, "/api/v1/me", None).await;
        let photo = me["photo"].as_str().unwrap().to_owned();
        let served = Server::client()
            .get(server.url(&photo))
            .bearer_auth(&other)
            .send()
            .await
            .unwrap();
        assert_eq!(served.status(), 200);
        assert_eq!(served.headers()["content-type"], "image/png");
        assert_eq!(served.headers()["x-content-type-options"], "nosniff");
        assert_eq!(served.bytes().await.unwrap().to_vec(), png);

        let (_, log) = server
            .api(Method::GET, "/api/v1/audit?action=account.profile", None)
            .await;
        let first = log["events"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(
            first["details"]["after"]["profile"]["title"], "Ops lead",
            "{first}"
        );
    }
);

on_both_backends!(
    admins_change_roles_and_the_last_owner_stays,
    |server: Server| async move {
        let server = &server;
        let admin = server.create_user_and_token("ad@example.com", "admin");
        let builder = server.create_user_and_token("bea@example.com", "builder");
        let (_, listed) = server.api(Method::GET, "/api/v1/members", None).await;
        let members = listed["members"].as_array().unwrap().clone();
        assert_eq!(members.len(), 3, "{listed}");
        let id_of = |email: &str| {
            members
                .iter()
                .find(|member| member["email"] == email)
                .unwrap()["user_id"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        let (ann, bea) = (id_of("ann@example.com"), id_of("bea@example.com"));
        let set = |token: String, id: String, role: &str| {
            let body = json!({ "role": role }).to_string();
            async move {
                server
                    .api_as(
                        &token,
                        Method::PUT,
                        &format!("/api/v1/members/{id}"),
                        Some(body),
                    )
                    .await
            }
        };

        // An admin gives roles up to their own, and takes none from an owner.
        assert_eq!(set(admin.clone(), bea.clone(), "operator").await.0, 200);
        assert_eq!(set(admin.clone(), bea.clone(), "owner").await.0, 403);
        assert_eq!(set(admin.clone(), ann.clone(), "viewer").await.0, 403);
        assert_eq!(
            set(builder.clone(), bea.clone(), "viewer").await.0,
            403,
            "builders change no roles"
        );
        let (_, me) = server
            .api_as(&builder, Method::GET, "/api/v1/whoami", None)
            .await;
        assert_eq!(
            me["role"], "operator",
            "the token follows its person's role"
        );

        // The last owner can neither be demoted nor leave; with a second owner, they can.
        let (status, refused) = set(server.token.clone(), ann.clone(), "admin").await;
        assert_eq!(status, 409, "{refused}");
        let (status, _) = server
            .api(Method::DELETE, &format!("/api/v1/members/{ann}"), None)
            .await;
        assert_eq!(status, 409);
        assert_eq!(set(server.token.clone(), bea.clone(), "owner").await.0, 200);

        // A member leaves by their own id; a removed member's token opens nothing.
        let (status, _) = server
            .api_as(
                &admin,
                Method::DELETE,
                &format!("/api/v1/members/{ann}"),
                None,
            )
            .await;
        assert_eq!(status, 403, "an admin removes no owner");
        let ad = id_of("ad@example.com");
        let (status, _) = server
            .api(Method::DELETE, &format!("/api/v1/members/{ad}"), None)
            .await;
        assert_eq!(status, 204);
        let (status, _) = server
            .api_as(&admin, Method::GET, "/api/v1/whoami", None)
            .await;
        assert_eq!(status, 401);
        let (status, _) = server
            .api(Method::DELETE, &format!("/api/v1/members/{ann}"), None)
            .await;
        assert_eq!(status, 204, "an owner leaves once another owner stays");
        // Bea, an owner now, reads the log with a token of her full role.
        let made = crate::support::weft()
            .args(["admin", "create-token", "--email", "bea@example.com"])
            .args(server.store_args())
            .output()
            .unwrap();
        let owner = String::from_utf8_lossy(&made.stdout).trim().to_owned();
        let (_, log) = server
            .api_as(
                &owner,
                Method::GET,
                "/api/v1/audit?action=member.remove",
                None,
            )
            .await;
        assert_eq!(log["events"].as_array().unwrap().len(), 2, "{log}");
    }
);
