// swift-tools-version:6.0
import PackageDescription
import Foundation

// LLVM through its C API: 19 where installed (Debian's llvm-19-dev), else 14 (llvm-dev).
// Sources/CLLVM/N/include holds symlinks into /usr/lib/llvm-N/include, so nested includes
// resolve to the same version (see docs/architecture.md, "Linking LLVM"). LLVM_MAJOR overrides.
let supportedLLVM = ["19", "14"]
let llvmMajor = ProcessInfo.processInfo.environment["LLVM_MAJOR"]
    ?? supportedLLVM.first { FileManager.default.fileExists(atPath: "/usr/lib/llvm-\($0)/include/llvm-c/Core.h") }
    ?? "19"

let package = Package(
    name: "Lathe",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "Lathe", targets: ["Lathe"]),
        .executable(name: "lathe", targets: ["LatheCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    ],
    targets: [
        .target(name: "CLLVM", path: "Sources/CLLVM/\(llvmMajor)",
                linkerSettings: [.linkedLibrary("LLVM-\(llvmMajor)")]),
        .target(name: "LatheIR"),
        .target(name: "LathePasses", dependencies: ["LatheIR"]),
        .target(name: "LatheCodegen", dependencies: ["LatheIR", "CLLVM"],
                swiftSettings: [.define("LLVM_\(llvmMajor)")]),
        .target(name: "CLatheThreads"),
        .target(name: "LatheRuntime", dependencies: ["LatheIR", "LathePasses", "LatheCodegen", "CLLVM", "CLatheThreads"]),
        .target(name: "Lathe", dependencies: ["LatheIR", "LathePasses", "LatheCodegen", "LatheRuntime"]),
        .target(name: "LatheONNX", dependencies: ["LatheIR", "LatheRuntime", "Lathe", .product(name: "SwiftProtobuf", package: "swift-protobuf")]),
        .target(name: "LatheConformance", dependencies: ["Lathe", "LatheONNX"]),
        .target(name: "LatheExamples", dependencies: ["Lathe", "LatheONNX"], path: "examples/Models"),
        // The `lathe` tool; its folder is not named `lathe`, which differs from `Lathe` only in case.
        .executableTarget(name: "LatheCLI", dependencies: [
            "Lathe", "LatheExamples", "LatheONNX", "LatheConformance", "LathePasses", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .testTarget(name: "LatheIRTests", dependencies: ["LatheIR", "LathePasses"]),
        .testTarget(name: "LatheCodegenTests", dependencies: ["LatheCodegen"]),
        .testTarget(name: "LatheTests", dependencies: ["Lathe", "LatheExamples", "LatheCodegen", "LatheRuntime"]),
        .testTarget(name: "LatheCLITests", dependencies: ["LatheCLI", "LatheIR", "LatheONNX"]),
        .testTarget(name: "LatheONNXTests", dependencies: ["Lathe", "LatheONNX", "LatheConformance", "LatheExamples"]),
    ],
    swiftLanguageModes: [.v5]
)
