//! A real directory for the LDAP tests: Debian's OpenLDAP `slapd`, configured by the test on
//! loopback with StartTLS (a test CA) and a test tree: people, a service account, nested
//! groups and a disabled account. The memberof overlay is loaded, so entries carry `memberOf`
//! as Active Directory's do.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BASE: &str = "dc=example,dc=com";
pub const SERVICE_DN: &str = "cn=ayush,ou=services,dc=example,dc=com";
pub const SERVICE_PW: &str = "service password";

pub struct Slapd {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub ca_file: PathBuf,
}

/// Everyone's password is `<uid>-password`.
const TREE: &str = "\
dn: dc=example,dc=com
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,dc=example,dc=com
objectClass: organizationalUnit
ou: people

dn: ou=groups,dc=example,dc=com
objectClass: organizationalUnit
ou: groups

dn: ou=services,dc=example,dc=com
objectClass: organizationalUnit
ou: services

dn: cn=ayush,ou=services,dc=example,dc=com
objectClass: person
cn: ayush
sn: service
userPassword: service password

dn: uid=alice,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: alice
cn: Alice Liddell
sn: Liddell
mail: alice@example.com
userPassword: alice-password

dn: uid=bob,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: bob
cn: Bob Builder
sn: Builder
mail: bob@example.com
userPassword: bob-password

dn: uid=carol,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: carol
cn: Carol Left
sn: Left
employeeType: disabled
userPassword: carol-password

dn: uid=dave,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: dave
cn: Dave Outsider
sn: Outsider
userPassword: dave-password

dn: cn=staff,ou=groups,dc=example,dc=com
objectClass: groupOfNames
cn: staff
member: uid=alice,ou=people,dc=example,dc=com
member: uid=bob,ou=people,dc=example,dc=com
member: uid=carol,ou=people,dc=example,dc=com

dn: cn=helpdesk,ou=groups,dc=example,dc=com
objectClass: groupOfNames
cn: helpdesk
member: uid=bob,ou=people,dc=example,dc=com

dn: cn=it-admins,ou=groups,dc=example,dc=com
objectClass: groupOfNames
cn: it-admins
member: cn=helpdesk,ou=groups,dc=example,dc=com
";

fn slapd() -> Option<PathBuf> {
    ["/usr/sbin/slapd"].iter().map(PathBuf::from).find(|p| p.exists())
}

impl Slapd {
    pub fn start() -> Slapd {
        let Some(bin) = slapd() else {
            crate::missing_peer("OpenLDAP slapd (apt-get install slapd)");
        };
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ca_file = crate::test_pki(d);
        std::fs::create_dir_all(d.join("db")).unwrap();
        let conf = format!(
            "include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
pidfile {d}/slapd.pid
TLSCACertificateFile {d}/ca.pem
TLSCertificateFile {d}/cert.pem
TLSCertificateKeyFile {d}/key.pem
database mdb
suffix \"{BASE}\"
rootdn \"cn=admin,{BASE}\"
rootpw admin-password
directory {d}/db
overlay memberof
access to attrs=userPassword by anonymous auth by self read by * none
access to * by users read by * none
",
            d = d.display()
        );
        let conf_path = d.join("slapd.conf");
        std::fs::write(&conf_path, conf).unwrap();
        std::fs::write(d.join("tree.ldif"), TREE).unwrap();
        let added = Command::new(bin.with_file_name("slapadd"))
            .arg("-f")
            .arg(&conf_path)
            .arg("-l")
            .arg(d.join("tree.ldif"))
            .output()
            .expect("run slapadd");
        assert!(added.status.success(), "slapadd: {}", String::from_utf8_lossy(&added.stderr));
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut s = Slapd { child: None, dir, port, ca_file };
        s.restart();
        s
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("slapd.conf")
    }

    /// Starts (again) on the same port and waits until it accepts connections.
    pub fn restart(&mut self) {
        self.stop();
        let child = Command::new(slapd().unwrap())
            .arg("-f")
            .arg(self.conf())
            .arg("-h")
            .arg(format!("ldap://127.0.0.1:{}/", self.port))
            .args(["-d", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start slapd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "slapd never listened on {}", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Changes the directory (an LDIF with `changetype`s), as its admins would: offline with
    /// slapmodify, then back up.
    pub fn modify(&mut self, ldif: &str) {
        self.stop();
        let path = self.dir.path().join("changes.ldif");
        std::fs::write(&path, ldif).unwrap();
        let out = Command::new(slapd().unwrap().with_file_name("slapmodify"))
            .arg("-f")
            .arg(self.conf())
            .arg("-l")
            .arg(&path)
            .output()
            .expect("run slapmodify");
        assert!(out.status.success(), "slapmodify: {}", String::from_utf8_lossy(&out.stderr));
        self.restart();
    }

    /// Takes the directory down (as an outage).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(self.dir.path().join("slapd.pid"));
    }

    /// The `[ldap]` section for a server using this directory over StartTLS.
    pub fn config(&self) -> String {
        format!(
            "[ldap]
enabled = true
url = \"ldap://localhost:{}\"
starttls = true
ca_file = \"{}\"
connect_timeout_secs = 2
timeout_secs = 3
bind_dn = \"{SERVICE_DN}\"
bind_password = \"{SERVICE_PW}\"
user_base = \"ou=people,{BASE}\"
group_base = \"ou=groups,{BASE}\"
disabled_filter = \"(employeeType=disabled)\"
",
            self.port,
            self.ca_file.display()
        )
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}
