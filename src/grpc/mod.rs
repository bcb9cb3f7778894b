//! The gRPC transport: generated code, one handler file per service, conversions and
//! error mapping. Only this module (and the CLI) knows protobuf types.

/// Code generated from `proto/`.
#[allow(missing_docs, clippy::all, clippy::pedantic, unreachable_pub)]
pub mod pb {
    /// The `cellar.v1` package.
    pub mod cellar {
        /// Version 1 of the API.
        pub mod v1 {
            tonic::include_proto!("cellar.v1");
        }
    }
    /// The `google.rpc` detail types, for reflection.
    pub mod google {
        /// `google.rpc`.
        pub mod rpc {
            tonic::include_proto!("google.rpc");
        }
    }
    /// The encoded descriptor set served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("cellar_descriptor");
}
