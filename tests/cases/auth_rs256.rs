//! RS256 JWTs: verified against the configured RSA public key, with the same refusals
//! as the other algorithms (expired, early, another audience, no role, a tampered
//! payload, a flipped signature byte). The key pair is a fixed test fixture (ring, the
//! signing library, cannot generate RSA keys).

use jsonwebtoken::EncodingKey;

use super::auth::{assert_no_secret, check_jwts, start};

/// A 2048-bit RSA key made for this test only (PKCS#1).
const PRIVATE_KEY: &str = "-----BEGIN RSA PRIVATE KEY-----\n\
MIIEowIBAAKCAQEAvbgWDsIiOnvNIJjWcz9qZflNWbwWuvvaW+Th4hpu6ZxDUzrM\n\
EENeZbkfylZ6CUv4OZymLSNttzfTCngaU6kkJNIoZXHOYgEBXw7GE00tlFmpY8P9\n\
4UizA6DDunT1xONFYVDUtSenUCno6YzCqJylGTvvmkHanxB1ARurpSt2DSbjtULs\n\
WlvZwVFJB+ST93sQX7KV/r9ldZS+7fc52QgV5qHotHzgK+Hqafbwwg6luGaR0MHV\n\
MckUb/MMZkCvOq/pouOhUUlyv4fUuinqga529U0mM13oFgehpCzSR4vNBvW0eska\n\
sffE/7Gt9o80x/rS5fIfKMJOSrk62IEmAuJalwIDAQABAoIBAAMPR3mRWLpOLWMe\n\
XMolloKH8+08nZnl116HQUoDYzuJKTyUyB5J6oXEBCpnKzAgMgd7Y1RCCIQBGfoq\n\
TV5kmIyvseD6SZ1qA0rQyFjl5emsooLHOT530/ZghDQHkE55TduIprEbr1TSQDYY\n\
Cx4WB1GcssoL0C2HU7H4RMXmqV6uH++bwcwNCuaJOmIWzYZURz7Hb/wy2hkl0Ulu\n\
7lqrYfnHRqxXMRz7I3m4ECJsexY2hf1h03cpe/YEbaLRKJgVk8Vw9niNrVCDtvWB\n\
90M5ThrZAFaiC2x7YQ7fFUyoYoSVjqxvOKfjcDFjaEbGgCk7wp8mnjPT/2Xfg/eI\n\
NHFnRtUCgYEA5HkxCX+aFVWThBfU/7atLx4nGNOvKLal5EUoU0ThXKgGbZKg7ECV\n\
sJbx0iYyVO6dcCMLNp3en4j0jsGplH9kibTV8X/YHI4pRy6w7aJg7IOkkpZGHl/p\n\
UJJ3AngzZeJZdXYnuibiHaBspUJ4/tsJvvbjJFN6x5WCVGCIv7Qg9osCgYEA1JOY\n\
OgPZlShqsrxYR/dUFdP+8cxwqIBbMMwyzxnAi0sx6sZx7k52Dr7vMeT6uToaW0eS\n\
wXxJLxC/d1p4fJeKcAFcJJlBTc3C2MOCDxYJ89kYhpG16KrLvbgnQhLWFF6MCVuN\n\
9xbQyxYBJiebQ+q6Ib9rjVdncV7+/TKd8O6LuaUCgYEAm4Zz/wdBmCw80rp2X+u2\n\
UFCyRJA0t/49RvpczPIihrRKS+R4bto4C5F045zkvjQAMAlq5K7qkKbl8xeZnGBr\n\
y+GxkUd5kVakerQp9FmIqPej27U33g1kAVjyclfohP5j7zWTLYCyg4Bk9MofGz13\n\
kOr3DA9XkO0RXuanr/eqSKkCgYABFiwOB90B3S4Gcd4FqCb+4ZGJDOF6iwVsT27n\n\
Dhuk2qKLr63/aNlDpAg2+hOqBLkDxG7knE0Hd49y/bxl7qRfhDJDYaEq06VuVDmC\n\
+DreyzpL3czPPqhB9QIGXXBItF8E4TntjGlO0HL7DfLGOxnueDsFgu/dbX3iL3MN\n\
OzrtnQKBgHnrzs1LXu35/r9Ez5INiehKbzXkUf3mYH754hUXWfJEEQWGDrZYdP0T\n\
ttJnjk8AQG7oYXHeuxS9x0hP4oqVj2Y5g7eicSPWgALCuXDFKEtRfWaL3cnAxk5x\n\
O5a9HM0DV3HUWnOGiD8cPB2bJWmBOod7NSkGa30BqJnYi0KkdAYk\n\
-----END RSA PRIVATE KEY-----\n";

/// Its public key (SubjectPublicKeyInfo).
const PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----\n\
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAvbgWDsIiOnvNIJjWcz9q\n\
ZflNWbwWuvvaW+Th4hpu6ZxDUzrMEENeZbkfylZ6CUv4OZymLSNttzfTCngaU6kk\n\
JNIoZXHOYgEBXw7GE00tlFmpY8P94UizA6DDunT1xONFYVDUtSenUCno6YzCqJyl\n\
GTvvmkHanxB1ARurpSt2DSbjtULsWlvZwVFJB+ST93sQX7KV/r9ldZS+7fc52QgV\n\
5qHotHzgK+Hqafbwwg6luGaR0MHVMckUb/MMZkCvOq/pouOhUUlyv4fUuinqga52\n\
9U0mM13oFgehpCzSR4vNBvW0eskasffE/7Gt9o80x/rS5fIfKMJOSrk62IEmAuJa\n\
lwIDAQAB\n\
-----END PUBLIC KEY-----\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_jwts_are_verified() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("jwt-rsa.pub");
    std::fs::write(&key_file, PUBLIC_KEY).unwrap();
    let config = dir.path().join("cellar.toml");
    let settings = format!(
        "[auth.jwt]\nalgorithm = \"RS256\"\nkey_file = \"{}\"\naudience = \"cellar\"\n",
        key_file.display()
    );
    std::fs::write(&config, settings).unwrap();
    let server = start(dir.path(), &config).await;
    let key = EncodingKey::from_rsa_pem(PRIVATE_KEY.as_bytes()).expect("the test key");
    let tokens = check_jwts(&server, jsonwebtoken::Algorithm::RS256, &key).await;
    let secrets: Vec<&str> = tokens.iter().map(String::as_str).collect();
    assert_no_secret(&server.logs(), &secrets);
}
